package graph_test

import (
	"math"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/graph"
	"gorgonia.org/tensor"
)

// fuseProgram builds arch (erased by eraseP), binds a random batch and
// compiles it with or without inference fusion.
func fuseProgram(t *testing.T, cfg arch.Config, eraseP float64, fuse bool) (*graph.Graph, *graph.Program) {
	t.Helper()
	var opts []graph.CompileOption
	if !fuse {
		opts = append(opts, graph.WithoutInferenceFusion())
	}
	return compileArch(t, cfg, eraseP, 9, opts...)
}

func fuseOutputs(t *testing.T, g *graph.Graph, p *graph.Program) []float64 {
	t.Helper()
	var out []float64
	for _, name := range g.OutputNames() {
		o, _ := p.Output(name)
		switch d := o.Data().(type) {
		case []float32:
			for _, v := range d {
				out = append(out, float64(v))
			}
		case []float64:
			out = append(out, d...)
		}
	}
	return out
}

// TestInferenceFusion checks that the fused inference machine (conv → batch
// norm [→ add] [→ ReLU] as one convolution with an epilogue) gives the
// unfused outputs to float32 rounding (1e-5 of the largest value; float64
// to 1e-12), also after training steps moved the running statistics, for
// networks with and without the ReLUs the erase pass removes.
func TestInferenceFusion(t *testing.T) {
	for _, c := range []struct {
		arch  string
		erase float64
		fused bool // whether any chain should fuse
		input [3]int
	}{
		{"resnet-20", 0, true, [3]int{}}, {"resnet-20", 0.5, true, [3]int{}}, {"resnet-20", 1, true, [3]int{}}, {"preact-resnet-20", 0, true, [3]int{}},
		{"wrn-16-1-d", 0, true, [3]int{}}, {"resnet-29-bottleneck", 0, true, [3]int{}}, {"fig3-vgg-7", 0, true, [3]int{}},
		{"inception-v2-3", 0, true, [3]int{}}, {"resnext-11-2x4d", 0, true, [3]int{}},
		{"imagenet-resnet-18", 0, true, [3]int{3, 32, 32}}, {"mlp-4", 0, false, [3]int{}},
	} {
		for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
			t.Run(c.arch+"/"+dt.String(), func(t *testing.T) {
				cfg := arch.Config{Arch: c.arch, Batch: 3, Dtype: dt, Seed: 11, InputShape: c.input}
				if c.input != ([3]int{}) {
					cfg.Classes = 10
				}
				g0, p0 := fuseProgram(t, cfg, c.erase, false)
				g1, p1 := fuseProgram(t, cfg, c.erase, true)
				if p0.InferenceFusions() != 0 {
					t.Fatalf("%d fusions without fusion", p0.InferenceFusions())
				}
				if got := p1.InferenceFusions(); (got > 0) != c.fused {
					t.Fatalf("%d fusions", got)
				}
				t.Logf("%d chains fused", p1.InferenceFusions())
				tol := 1e-12
				if dt == tensor.Float32 {
					tol = 1e-5
				}
				for round := 0; round < 3; round++ {
					// inference first with the initial statistics, then after
					// training steps changed them
					for _, p := range []*graph.Program{p0, p1} {
						if round > 0 {
							if err := p.Train(); err != nil {
								t.Fatal(err)
							}
						}
						if err := p.Infer(); err != nil {
							t.Fatal(err)
						}
					}
					want, got := fuseOutputs(t, g0, p0), fuseOutputs(t, g1, p1)
					if len(got) != len(want) {
						t.Fatalf("%d outputs, want %d", len(got), len(want))
					}
					scale := 1.0
					for _, v := range want {
						scale = max(scale, math.Abs(v))
					}
					for i := range want {
						if math.Abs(got[i]-want[i]) > tol*scale || math.IsNaN(got[i]) {
							t.Fatalf("round %d: output %d = %v fused, %v unfused", round, i, got[i], want[i])
						}
					}
				}
			})
		}
	}
}
