package graph_test

import (
	"math"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// planRun builds arch, optionally erases it, compiles it with or without the
// memory plan and returns the loss, every gradient and the logits of two
// training passes and an inference pass, flattened.
func planRun(t *testing.T, cfg arch.Config, eraseP float64, plan bool) ([]float64, *graph.Program) {
	t.Helper()
	var opts []graph.CompileOption
	if !plan {
		opts = append(opts, graph.WithoutMemoryPlan())
	}
	g, p := compileArch(t, cfg, eraseP, 3, opts...)
	var out []float64
	read := func() {
		out = append(out, p.Loss())
		for _, prm := range g.Params() {
			gr, err := p.Grad(prm)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range gr.Data().([]float32) {
				out = append(out, float64(v))
			}
		}
	}
	for step := 0; step < 2; step++ {
		if err := p.Train(); err != nil {
			t.Fatal(err)
		}
		read()
	}
	if err := p.Infer(); err != nil {
		t.Fatal(err)
	}
	for _, name := range g.OutputNames() {
		o, _ := p.Output(name)
		for _, v := range o.Data().([]float32) {
			out = append(out, float64(v))
		}
	}
	return out, p
}

// TestMemoryPlanBitwise checks that the memory plan (in-place ops, shared
// gradient storage) changes no bit of the loss, the gradients or the outputs.
func TestMemoryPlanBitwise(t *testing.T) {
	for _, c := range []struct {
		arch  string
		erase float64
	}{
		{"resnet-20", 0}, {"resnet-20", 0.5}, {"preact-resnet-20", 0}, {"wrn-16-1-d", 0},
		{"resnet-29-bottleneck", 0}, {"fig3-vgg-7", 0}, {"mlp-4", 0}, {"inception-v2-3", 0},
	} {
		t.Run(c.arch, func(t *testing.T) {
			cfg := arch.Config{Arch: c.arch, Batch: 3, Dtype: tensor.Float32, Seed: 7}
			want, _ := planRun(t, cfg, c.erase, false)
			got, p := planRun(t, cfg, c.erase, true)
			if p.MemoryPlan() == nil {
				t.Fatal("no memory plan")
			}
			t.Log(p.MemoryPlan())
			if p.MemoryPlan().InPlace == 0 || p.MemoryPlan().Shared == 0 {
				t.Errorf("plan did nothing: %v", p.MemoryPlan())
			}
			if len(got) != len(want) {
				t.Fatalf("%d values, want %d", len(got), len(want))
			}
			for i := range got {
				if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
					t.Fatalf("value %d: %v with the plan, %v without", i, got[i], want[i])
				}
			}
		})
	}
}

// TestMemoryPlanSharedOps compiles a graph and its erased rewrite (which
// share parameters) and runs them in turns: both must match their
// unplanned twins.
func TestMemoryPlanSharedOps(t *testing.T) {
	cfg := arch.Config{Arch: "resnet-20", Batch: 2, Dtype: tensor.Float32, Seed: 5}
	build := func(plan bool) (*graph.Graph, *graph.Graph, *graph.Program, *graph.Program) {
		g, err := arch.Build(cfg)
		if err != nil {
			t.Fatal(err)
		}
		h, _, err := erase.Apply(g, erase.Options{Proportion: 1})
		if err != nil {
			t.Fatal(err)
		}
		var opts []graph.CompileOption
		if !plan {
			opts = append(opts, graph.WithoutMemoryPlan())
		}
		pg, err := graph.Compile(g, "loss", opts...)
		if err != nil {
			t.Fatal(err)
		}
		ph, err := graph.Compile(h, "loss", opts...)
		if err != nil {
			t.Fatal(err)
		}
		for _, gr := range []*graph.Graph{g, h} {
			x, _ := gr.Input("x")
			y, _ := gr.Input("y")
			xt := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(x.Shape()...))
			d := xt.Data().([]float32)
			for i := range d {
				d[i] = float32(math.Sin(float64(i)))
			}
			if err := gorgonia.Let(x, xt); err != nil {
				t.Fatal(err)
			}
			if err := gorgonia.Let(y, tensor.New(tensor.WithShape(2), tensor.WithBacking([]int{1, 7}))); err != nil {
				t.Fatal(err)
			}
		}
		return g, h, pg, ph
	}
	_, _, wg, wh := build(false)
	_, _, gg, gh := build(true)
	for i, pair := range [][2]*graph.Program{{wg, gg}, {wh, gh}, {wg, gg}, {wh, gh}} {
		for _, p := range pair {
			if err := p.Train(); err != nil {
				t.Fatal(err)
			}
			if err := p.Infer(); err != nil {
				t.Fatal(err)
			}
		}
		if a, b := pair[0].Loss(), pair[1].Loss(); a != b {
			t.Fatalf("run %d: loss %v with the plan, %v without", i, b, a)
		}
	}
}
