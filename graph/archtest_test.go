package graph_test

import (
	"math/rand/v2"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// compileArch builds cfg's architecture, erases the trailing ReLU of the
// proportion eraseP of its modules, compiles it with opts (the program is
// closed when the test ends) and binds a random batch (bindRandom, seed).
func compileArch(t *testing.T, cfg arch.Config, eraseP float64, seed uint64, opts ...graph.CompileOption) (*graph.Graph, *graph.Program) {
	t.Helper()
	g, err := arch.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if eraseP > 0 {
		if g, _, err = erase.Apply(g, erase.Options{Proportion: eraseP}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := graph.Compile(g, "loss", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	bindRandom(t, g, seed)
	return g, p
}

// bindRandom binds standard-normal images of the graph's dtype and labels
// below 10, drawn in that order from a PCG seeded (seed, seed+1), to the
// inputs x and y.
func bindRandom(t *testing.T, g *graph.Graph, seed uint64) {
	t.Helper()
	x, _ := g.Input("x")
	y, _ := g.Input("y")
	rng := rand.New(rand.NewPCG(seed, seed+1))
	v := make([]float64, x.Shape().TotalSize())
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	xt := tensor.New(tensor.WithShape(x.Shape()...), tensor.WithBacking(v))
	if x.Dtype() == tensor.Float32 {
		v32 := make([]float32, len(v))
		for i := range v {
			v32[i] = float32(v[i])
		}
		xt = tensor.New(tensor.WithShape(x.Shape()...), tensor.WithBacking(v32))
	}
	labels := make([]int, y.Shape()[0])
	for i := range labels {
		labels[i] = rng.IntN(10)
	}
	if err := gorgonia.Let(x, xt); err != nil {
		t.Fatal(err)
	}
	if err := gorgonia.Let(y, tensor.New(tensor.WithShape(len(labels)), tensor.WithBacking(labels))); err != nil {
		t.Fatal(err)
	}
}
