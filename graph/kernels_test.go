package graph_test

import (
	"math"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/tensor"
)

// TestWithKernels compiles one network with the default kernels and with
// im2col+GEMM only: both agree to float32 rounding, and where the CPU runs
// the AVX-512 kernels the two differ in some bit (the sums run in another
// order), which shows that the choice reached the ops. A configuration no
// kernel can work with is refused.
func TestWithKernels(t *testing.T) {
	t.Parallel()
	gemm := ops.DefaultKernels()
	gemm.Direct, gemm.SIMD = false, false
	cfg := arch.Config{Arch: "resnet-20", Batch: 2, Dtype: tensor.Float32, Seed: 4}
	run := func(k ops.Kernels) []float64 {
		g, p := compileArch(t, cfg, 0, 6, graph.WithKernels(k))
		if p.Kernels() != k {
			t.Fatalf("program runs %+v, want %+v", p.Kernels(), k)
		}
		if err := p.Train(); err != nil {
			t.Fatal(err)
		}
		out := []float64{p.Loss()}
		for _, prm := range g.Params() {
			gr, err := p.Grad(prm)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range gr.Data().([]float32) {
				out = append(out, float64(v))
			}
		}
		return out
	}
	want, got := run(ops.DefaultKernels()), run(gemm)
	scale, differ := 1.0, false
	for _, v := range want {
		scale = max(scale, math.Abs(v))
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-3*scale {
			t.Fatalf("value %d: %v with im2col+GEMM, %v with the default kernels", i, got[i], want[i])
		}
		differ = differ || got[i] != want[i]
	}
	if strings.Contains(ops.DefaultKernels().String(), "AVX-512") && !differ {
		t.Error("im2col+GEMM gave the default kernels' bits: the choice did not reach the ops")
	}

	bad := ops.DefaultKernels()
	bad.TargetCols = 0
	g, err := arch.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := graph.Compile(g, "loss", graph.WithKernels(bad)); err == nil || !strings.Contains(err.Error(), "TargetCols") {
		t.Errorf("Compile with TargetCols 0: error %v, want one naming TargetCols", err)
	}
}
