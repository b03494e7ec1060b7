package pipeline_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/cuda"
	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/pipeline"
	"gorgonia.org/tensor"
)

// handAssembled is the sequence every caller wrote before the pipeline
// existed: build, erase, compile.
func handAssembled(t *testing.T, cfg arch.Config, opt erase.Options) (*graph.Graph, *graph.Program) {
	t.Helper()
	g, err := arch.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if g, _, err = erase.Apply(g, opt); err != nil {
		t.Fatal(err)
	}
	p, err := graph.Compile(g, "loss")
	if err != nil {
		t.Fatal(err)
	}
	return g, p
}

// TestCompileMatchesHandAssembly: the pipeline's program trains exactly as
// the hand-assembled one (the same losses, bit for bit, over a few steps
// with stochastic depth and PReLU replacement).
func TestCompileMatchesHandAssembly(t *testing.T) {
	cfg := arch.Config{Arch: "resnet-8", Batch: 4, Seed: 5, StochasticDepth: true, InputShape: [3]int{3, 8, 8}}
	opt := erase.Options{Proportion: 0.5, Replacement: erase.PReLU}
	g0, p0 := handAssembled(t, cfg, opt)
	defer p0.Close()
	nw, err := pipeline.Compile(pipeline.Net{Arch: cfg.Arch, Batch: cfg.Batch, Seed: cfg.Seed, StochasticDepth: true,
		Input: cfg.InputShape, Erase: &opt})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	if nw.Report == nil || len(nw.Report.Erased) != 2 || nw.Graph == nw.Built {
		t.Fatalf("report %+v; erased graph distinct from the built one: %v", nw.Report, nw.Graph != nw.Built)
	}
	xs, ys, err := cuda.BindRandomBatch(g0, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := cuda.BindBatch(nw.Graph, xs, ys); err != nil {
		t.Fatal(err)
	}
	for step := 0; step < 3; step++ {
		if err := p0.Train(); err != nil {
			t.Fatal(err)
		}
		if err := nw.Program.Train(); err != nil {
			t.Fatal(err)
		}
		if a, b := p0.Loss(), nw.Program.Loss(); math.Float64bits(a) != math.Float64bits(b) {
			t.Fatalf("step %d: loss %v through the pipeline, %v by hand", step, b, a)
		}
	}
}

// TestBuildStages: without erase options the network is the built graph;
// extra outputs are added before erasing and name the same values in the
// rewrite; errors name the architecture.
func TestBuildStages(t *testing.T) {
	nw, err := pipeline.Build(pipeline.Net{Arch: "fig3-res-4", Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	if nw.Graph != nw.Built || nw.Report != nil || nw.Program != nil || nw.Spec.Family != arch.Fig3Res {
		t.Errorf("plain build: %+v", nw)
	}
	nw.Close() // nothing compiled: nothing to release

	hidden := func(g *graph.Graph) error {
		mods := g.Modules()
		g.SetOutput("hidden", mods[len(mods)-1].Output)
		return nil
	}
	nw, err = pipeline.Build(pipeline.Net{Arch: "scalar-3", Batch: 2, Dtype: tensor.Float64, Outputs: hidden,
		Erase: &erase.Options{Proportion: 1}})
	if err != nil {
		t.Fatal(err)
	}
	h, ok := nw.Graph.Output("hidden")
	if !ok || nw.Graph == nw.Built {
		t.Fatalf("erased graph has output hidden: %v", ok)
	}
	if arch.Count(nw.Graph).ReLUs != 0 || nw.Report.ReLUsAfter != 0 || h.Dtype() != tensor.Float64 {
		t.Errorf("scalar-3 fully erased: %d ReLUs left, report %+v", arch.Count(nw.Graph).ReLUs, nw.Report)
	}

	_, err = pipeline.Build(pipeline.Net{Arch: "fig3-res-4", Outputs: func(*graph.Graph) error { return errors.New("no such layer") }})
	if err == nil || !strings.Contains(err.Error(), "fig3-res-4: outputs") {
		t.Errorf("failing outputs: %v", err)
	}
	_, err = pipeline.Build(pipeline.Net{Arch: "fig3-res-4", Erase: &erase.Options{Proportion: 2}})
	if err == nil || !strings.Contains(err.Error(), "fig3-res-4") {
		t.Errorf("bad erase options: %v", err)
	}
	if _, err = pipeline.Compile(pipeline.Net{Arch: "resnet-21"}); err == nil || !strings.Contains(err.Error(), "resnet-21") {
		t.Errorf("bad architecture: %v", err)
	}
	if _, err = pipeline.Compile(pipeline.Net{Arch: "mlp-2", Loss: "nope"}); err == nil || !strings.Contains(err.Error(), "mlp-2: compile") {
		t.Errorf("unknown loss output: %v", err)
	}
}
