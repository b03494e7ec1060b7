package pipeline

import (
	"fmt"
	"strings"

	"github.com/eraserelu/eraserelu/cuda"
	"github.com/eraserelu/eraserelu/train"
)

// Device is where a training run's passes go.
type Device struct {
	// Name is "cpu" (or ""), "cuda" (GPU 0, in the binary built with -tags
	// gpu) or "cuda-ref" (the CUDA path on its CPU reference interpreter:
	// every kernel and the memory plan, slowly, without a device).
	Name string
	// CUDAGraph replays each training step as one captured CUDA graph
	// (cuda only).
	CUDAGraph bool
	// Lowering is how the CUDA path lowers the step (cuda and cuda-ref):
	// its precision (fp32 when empty; tf32 on cuda only, bf16 on both),
	// whether batch-norm outputs are recomputed and convolutions run
	// direct. On the CPU only its zero value is valid.
	cuda.Lowering
}

// Backend is the trainer's backend for the device (train.Options.Backend;
// nil: the CPU backend).
func (d Device) Backend() (train.BackendFactory, error) {
	low := d.Lowering
	if low.Precision == "" {
		low.Precision = cuda.FP32
	}
	switch d.Name {
	case "", "cpu":
		var chosen []string
		if low.Precision != cuda.FP32 {
			chosen = append(chosen, "precision "+string(low.Precision))
		}
		if low.RecomputeBN {
			chosen = append(chosen, "recomputing batch-norm outputs")
		}
		if low.DirectConv {
			chosen = append(chosen, "direct convolutions")
		}
		if len(chosen) > 0 {
			return nil, fmt.Errorf("%q: %s: a choice of the CUDA path (cuda, cuda-ref); the CPU computes in fp32 and chooses its kernels itself", d.Name, strings.Join(chosen, ", "))
		}
		return nil, nil
	case "cuda":
		return cudaBackend(cuda.Options{Graph: d.CUDAGraph, Lowering: low})
	case "cuda-ref":
		return cuda.NewBackend(cuda.NewRefExecutor, low), nil
	}
	return nil, fmt.Errorf("%q: unknown device (valid: cpu, cuda, cuda-ref)", d.Name)
}
