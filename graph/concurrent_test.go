package graph_test

import (
	"math"
	"sync"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"gorgonia.org/tensor"
)

// concurrentPair is a network and its erased rewrite with parameters of
// its own (CopyParams: training updates parameters and batch-norm
// statistics in place, which two concurrent trainings must not share),
// compiled, with one random batch bound to both.
func concurrentPair(t *testing.T, cfg arch.Config) (*graph.Graph, *graph.Graph, *graph.Program, *graph.Program) {
	t.Helper()
	g, err := arch.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := erase.Apply(g, erase.Options{Proportion: 1, Location: erase.First, CopyParams: true})
	if err != nil {
		t.Fatal(err)
	}
	var progs [2]*graph.Program
	for i, gr := range []*graph.Graph{g, h} {
		if progs[i], err = graph.Compile(gr, "loss"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { progs[i].Close() })
		bindRandom(t, gr, 11)
	}
	return g, h, progs[0], progs[1]
}

// trainSteps runs steps training passes, each followed by a plain gradient
// step on every parameter and an inference pass, and returns the losses
// and the logits of every inference, flattened.
func trainSteps(g *graph.Graph, p *graph.Program, steps int) ([]float64, error) {
	var out []float64
	for s := 0; s < steps; s++ {
		if err := p.Train(); err != nil {
			return nil, err
		}
		out = append(out, p.Loss())
		for _, prm := range g.Params() {
			gr, err := p.Grad(prm)
			if err != nil {
				return nil, err
			}
			w := prm.Node.Value().Data().([]float32)
			for i, v := range gr.Data().([]float32) {
				w[i] -= 0.05 * v
			}
		}
		if err := p.Infer(); err != nil {
			return nil, err
		}
		o, err := p.Output("logits")
		if err != nil {
			return nil, err
		}
		for _, v := range o.Data().([]float32) {
			out = append(out, float64(v))
		}
	}
	return out, nil
}

// TestRewriteTrainsConcurrently trains a network (batch norm, dropout,
// convolutions, in-place ReLUs and adds) and its erased rewrite at the same
// time on two goroutines, and checks every loss and inference output
// against the two trained one after the other: a rewrite has ops, buffers,
// mode and kernel workspace of its own. Run it under -race.
func TestRewriteTrainsConcurrently(t *testing.T) {
	cfg := arch.Config{Arch: "wrn-16-1-d", Batch: 2, Dtype: tensor.Float32, Seed: 9}
	const steps = 3
	g, h, pg, ph := concurrentPair(t, cfg)
	var want [2][]float64
	for i, gp := range []struct {
		g *graph.Graph
		p *graph.Program
	}{{g, pg}, {h, ph}} {
		var err error
		if want[i], err = trainSteps(gp.g, gp.p, steps); err != nil {
			t.Fatal(err)
		}
	}

	g, h, pg, ph = concurrentPair(t, cfg)
	var got [2][]float64
	var errs [2]error
	var wg sync.WaitGroup
	for i, gp := range []struct {
		g *graph.Graph
		p *graph.Program
	}{{g, pg}, {h, ph}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = trainSteps(gp.g, gp.p, steps)
		}()
	}
	wg.Wait()
	for i, name := range []string{"original", "erased"} {
		if errs[i] != nil {
			t.Fatalf("%s: %v", name, errs[i])
		}
		if len(got[i]) != len(want[i]) {
			t.Fatalf("%s: %d values, want %d", name, len(got[i]), len(want[i]))
		}
		for j := range got[i] {
			if math.Float64bits(got[i][j]) != math.Float64bits(want[i][j]) {
				t.Fatalf("%s: value %d is %v trained concurrently, %v alone", name, j, got[i][j], want[i][j])
			}
		}
	}
	if want[0][0] == want[1][0] {
		t.Error("the original and the erased network have the same first loss: the erase pass did nothing")
	}
}

// TestRewriteClonesOps checks that a rewrite shares no op of this library
// with its source, nor the mode switch.
func TestRewriteClonesOps(t *testing.T) {
	for _, a := range []string{"wrn-16-1-d", "resnext-11-2x4d", "inception-v2-3", "mlp-4"} {
		g, err := arch.Build(arch.Config{Arch: a, Batch: 2, Dtype: tensor.Float32, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		h, m, err := graph.Rewrite(g, nil, graph.RewriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if g.Mode() == h.Mode() {
			t.Errorf("%s: the rewrite shares the mode switch", a)
		}
		ops := 0
		for src, dst := range m {
			if src.Op() == nil || src.IsVar() || src.Op().Arity() == 0 {
				continue
			}
			if src.Op() == dst.Op() {
				t.Errorf("%s: node %v shares its op %v with the rewrite", a, src, src.Op())
			}
			ops++
		}
		if ops == 0 {
			t.Errorf("%s: no op nodes rewritten", a)
		}
	}
}
