package graph_test

import (
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/graph/ops/cpu"
	"gorgonia.org/tensor"
)

// TestStepAllocations checks that, once warm, a training pass and an
// inference pass (fused) of ResNet-20 allocate nothing, in both dtypes
// (with OpenBLAS: gonum's GEMM allocates by itself).
func TestStepAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	if !cpu.BLASAllocFree {
		t.Skip("gonum's GEMM (purego) allocates by itself")
	}
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		_, p := fuseProgram(t, arch.Config{Arch: "resnet-20", Batch: 4, Dtype: dt, Seed: 3}, 0, true)
		for i := 0; i < 2; i++ {
			if err := p.Train(); err != nil {
				t.Fatal(err)
			}
			if err := p.Infer(); err != nil {
				t.Fatal(err)
			}
		}
		for _, pass := range []struct {
			name string
			run  func() error
		}{{"train", p.Train}, {"infer", p.Infer}} {
			allocs := testing.AllocsPerRun(3, func() {
				if err := pass.run(); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("%v %s: %v allocations per pass, want 0", dt, pass.name, allocs)
			}
		}
	}
}
