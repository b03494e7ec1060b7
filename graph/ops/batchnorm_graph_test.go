package ops_test

// The ops of this family in a whole network built with package graph:
// compiled, trained, switched to inference, and rewritten with copied
// parameters and buffers.

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

var _ ops.Cloner = (*ops.BatchNormOp)(nil)

// ntResNet: x (N,D) -> [linear -> BN -> PReLU -> dropout -> linear -> BN,
// + shortcut, ReLU] x2 -> concat with a LayerNorm branch -> linear -> CE.
func ntResNet(t *testing.T, dt tensor.Dtype) (*graph.Graph, []*ops.CrossEntropyOp) {
	t.Helper()
	const n, d, k = 32, 6, 3
	g := graph.New(dt, 7)
	rng := rand.New(rand.NewPCG(5, 5))
	x := g.NewInput("x", dt, n, d)
	labels := g.NewInput("labels", tensor.Int, n)
	xv := tensor.New(tensor.Of(dt), tensor.WithShape(n, d))
	lv := make([]int, n)
	for i := 0; i < n; i++ {
		lv[i] = rng.IntN(k)
		for j := 0; j < d; j++ {
			v := rng.NormFloat64()
			if j == lv[i] {
				v += 2 // learnable
			}
			if dt == tensor.Float32 {
				xv.Float32s()[i*d+j] = float32(v)
			} else {
				xv.Float64s()[i*d+j] = v
			}
		}
	}
	must := func(nd *gorgonia.Node, err error) *gorgonia.Node {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return nd
	}
	if err := gorgonia.Let(x, xv); err != nil {
		t.Fatal(err)
	}
	if err := gorgonia.Let(labels, tensor.New(tensor.WithShape(n), tensor.WithBacking(lv))); err != nil {
		t.Fatal(err)
	}
	bn := func(h *gorgonia.Node) *gorgonia.Node {
		gm := g.NewParam("gamma", []int{d}, graph.Constant(1), true)
		bt := g.NewParam("beta", []int{d}, graph.Constant(0), true)
		rm := g.NewBuffer("running_mean", []int{d}, 0)
		rv := g.NewBuffer("running_var", []int{d}, 1)
		return must(ops.BatchNorm(h, gm, bt, ops.BatchNormConfig{Mode: g.Mode(), RunningMean: rm, RunningVar: rv}))
	}
	h := x
	for b := 0; b < 2; b++ {
		var err error
		h, err = g.Build(fmt.Sprintf("block%d", b), graph.Residual, func() (*gorgonia.Node, error) {
			w1 := g.NewParam("w1", []int{d, d}, graph.HeNormal(), false)
			z := bn(must(gorgonia.Mul(h, w1)))
			z = must(ops.PReLU(z, g.NewParam("alpha", []int{d}, graph.Constant(0.25), true)))
			z = must(ops.Dropout(z, 0.1, g.Mode(), uint64(b)))
			w2 := g.NewParam("w2", []int{d, d}, graph.HeNormal(), false)
			z = bn(must(gorgonia.Mul(z, w2)))
			z = must(ops.StochasticDepth(z, 0.9, g.Mode(), uint64(10+b)))
			return ops.ReLU(must(ops.Add(h, z)))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	ln := must(ops.LayerNorm(x, g.NewParam("ln_g", []int{d}, graph.Constant(1), true), g.NewParam("ln_b", []int{d}, graph.Constant(0), true), 0))
	cat := must(ops.Concat(h, ln))
	wo := g.NewParam("wo", []int{2 * d, k}, graph.HeNormal(), false)
	loss, ce, err := ops.SoftmaxCrossEntropy(must(gorgonia.Mul(cat, wo)), labels)
	if err != nil {
		t.Fatal(err)
	}
	g.SetOutput("loss", loss)
	return g, []*ops.CrossEntropyOp{ce}
}

func ntSGD(t *testing.T, p *graph.Program, lr float64) {
	t.Helper()
	for _, prm := range p.Graph().Params() {
		gd, err := p.Grad(prm)
		if err != nil {
			t.Fatal(err)
		}
		w := prm.Node.Value().(*tensor.Dense)
		switch wv := w.Data().(type) {
		case []float64:
			for i, gv := range gd.Float64s() {
				wv[i] -= lr * gv
			}
		case []float32:
			for i, gv := range gd.Float32s() {
				wv[i] -= float32(lr) * gv
			}
		}
		gd.Zero() // Gorgonia accumulates gradients into the dual values
	}
}

func TestNormOpsInNetwork(t *testing.T) {
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		g, ces := ntResNet(t, dt)
		p, err := graph.Compile(g, "loss")
		if err != nil {
			t.Fatalf("%v: %v", dt, err)
		}
		var first, last float64
		for step := 0; step < 60; step++ {
			if err := p.Train(); err != nil {
				t.Fatalf("%v step %d: %v", dt, step, err)
			}
			if step == 0 {
				first = p.Loss()
			}
			last = p.Loss()
			if math.IsNaN(last) {
				t.Fatalf("%v step %d: NaN loss", dt, step)
			}
			ntSGD(t, p, 0.1)
		}
		if !(last < 0.7*first) {
			t.Errorf("%v: loss %v -> %v, want a clear fall", dt, first, last)
		}
		buffers := map[string][]float64{}
		for _, b := range g.Buffers() {
			buffers[b.Name] = ntFloats(b.Value)
		}
		if err := p.Infer(); err != nil {
			t.Fatal(err)
		}
		inferLoss := p.Loss()
		if err := p.Infer(); err != nil {
			t.Fatal(err)
		}
		if p.Loss() != inferLoss {
			t.Errorf("%v: inference is not deterministic: %v then %v", dt, inferLoss, p.Loss())
		}
		for _, b := range g.Buffers() {
			if !ntEqual(ntFloats(b.Value), buffers[b.Name]) {
				t.Errorf("%v: inference changed buffer %s", dt, b.Name)
			}
		}
		if ces[0].Count() != 32 || ces[0].Correct(3) != 32 {
			t.Errorf("%v: Count %d, Correct(3) %d", dt, ces[0].Count(), ces[0].Correct(3))
		}

		// a rewrite with copied buffers trains independently
		h, _, err := graph.Rewrite(g, nil, graph.RewriteOptions{CopyParams: true})
		if err != nil {
			t.Fatal(err)
		}
		hp, err := graph.Compile(h, "loss")
		if err != nil {
			t.Fatal(err)
		}
		x, _ := h.Input("x")
		lab, _ := h.Input("labels")
		gx, _ := g.Input("x")
		glab, _ := g.Input("labels")
		if err := gorgonia.Let(x, gx.Value()); err != nil {
			t.Fatal(err)
		}
		if err := gorgonia.Let(lab, glab.Value()); err != nil {
			t.Fatal(err)
		}
		if err := hp.Infer(); err != nil {
			t.Fatal(err)
		}
		if hp.Loss() != inferLoss {
			t.Errorf("%v: the copy infers loss %v, the original %v", dt, hp.Loss(), inferLoss)
		}
		if err := hp.Train(); err != nil {
			t.Fatal(err)
		}
		changed := 0
		for i, b := range h.Buffers() {
			orig := g.Buffers()[i]
			if b.Value == orig.Value {
				t.Errorf("%v: buffer %s is shared", dt, b.Name)
			}
			if !ntEqual(ntFloats(orig.Value), buffers[orig.Name]) {
				t.Errorf("%v: training the copy changed the original buffer %s", dt, orig.Name)
			}
			if !ntEqual(ntFloats(b.Value), buffers[orig.Name]) {
				changed++
			}
		}
		if changed != len(h.Buffers()) {
			t.Errorf("%v: training the copy updated %d of its %d buffers", dt, changed, len(h.Buffers()))
		}
		p.Close()
		hp.Close()
	}
}
