package pipeline_test

import (
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/cuda"
	"github.com/eraserelu/eraserelu/pipeline"
)

// TestDeviceBackend: cpu is the trainer's default backend (nil), cuda-ref
// the device path on the interpreter, an unknown name an error listing the
// valid ones.
func TestDeviceBackend(t *testing.T) {
	for _, name := range []string{"", "cpu"} {
		if b, err := (pipeline.Device{Name: name}).Backend(); b != nil || err != nil {
			t.Errorf("device %q: %v, %v", name, b != nil, err)
		}
	}
	if b, err := (pipeline.Device{Name: "cuda-ref"}).Backend(); b == nil || err != nil {
		t.Errorf("device cuda-ref: %v, %v", b != nil, err)
	}
	if _, err := (pipeline.Device{Name: "tpu"}).Backend(); err == nil || !strings.Contains(err.Error(), "valid: cpu, cuda, cuda-ref") {
		t.Errorf("device tpu: %v", err)
	}
	// Recomputing batch-norm outputs is a choice of the CUDA path only.
	if _, err := (pipeline.Device{Name: "cpu", Lowering: cuda.Lowering{RecomputeBN: true}}).Backend(); err == nil || !strings.Contains(err.Error(), "CUDA path") {
		t.Errorf("cpu with RecomputeBN: %v", err)
	}
	if b, err := (pipeline.Device{Name: "cuda-ref", Lowering: cuda.Lowering{RecomputeBN: true}}).Backend(); b == nil || err != nil {
		t.Errorf("cuda-ref with RecomputeBN: %v, %v", b != nil, err)
	}
	// So are direct convolutions and a precision other than fp32; the
	// error names each choice.
	for _, tc := range []struct {
		low  cuda.Lowering
		want string
	}{
		{cuda.Lowering{DirectConv: true}, "direct convolutions"},
		{cuda.Lowering{Precision: cuda.BF16}, "precision bf16"},
		{cuda.Lowering{Precision: cuda.TF32, RecomputeBN: true}, "precision tf32, recomputing batch-norm outputs"},
	} {
		if _, err := (pipeline.Device{Name: "cpu", Lowering: tc.low}).Backend(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("cpu with %+v: %v", tc.low, err)
		}
	}
	if _, err := (pipeline.Device{Name: "cpu", Lowering: cuda.Lowering{Precision: cuda.FP32}}).Backend(); err != nil {
		t.Errorf("cpu with fp32: %v", err)
	}
	if b, err := (pipeline.Device{Name: "cuda-ref", Lowering: cuda.Lowering{DirectConv: true}}).Backend(); b == nil || err != nil {
		t.Errorf("cuda-ref with DirectConv: %v, %v", b != nil, err)
	}
}
