package erase_test

import (
	"fmt"
	"testing"

	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// mlpNet has n modules dense -> ReLU -> dropout: the trailing ReLU sits
// before the module's output.
func mlpNet(t *testing.T, n int) *graph.Graph {
	g := graph.New(tensor.Float64, 5)
	h := g.NewInput("x", tensor.Float64, 3, 4)
	for i := 0; i < n; i++ {
		var err error
		h, err = g.Build(fmt.Sprintf("fc%d", i+1), graph.MLP, func() (*gorgonia.Node, error) {
			w := g.NewParam("w", []int{4, 4}, graph.HeNormal(), false)
			r := mustNode(ops.ReLU(mustNode(gorgonia.Mul(h, w))))
			return ops.Dropout(r, 0.2, g.Mode(), uint64(i))
		})
		must(t, err)
	}
	g.SetOutput("loss", mustNode(gorgonia.Sum(h)))
	return g
}

// inceptionNet has n modules of three branches, each ending in a ReLU,
// concatenated; a projection brings the width back.
func inceptionNet(t *testing.T, n int) *graph.Graph {
	g := graph.New(tensor.Float64, 6)
	h := g.NewInput("x", tensor.Float64, 3, 4)
	for i := 0; i < n; i++ {
		var err error
		h, err = g.Build(fmt.Sprintf("inception%d", i+1), graph.Inception, func() (*gorgonia.Node, error) {
			var branches []*gorgonia.Node
			for b := 0; b < 3; b++ {
				w := g.NewParam(fmt.Sprintf("branch%d", b), []int{4, 2}, graph.HeNormal(), false)
				branches = append(branches, mustNode(ops.ReLU(mustNode(gorgonia.Mul(h, w)))))
			}
			return ops.Concat(branches...)
		})
		must(t, err)
		w := g.NewParam(fmt.Sprintf("proj%d", i+1), []int{6, 4}, graph.HeNormal(), false)
		h = mustNode(gorgonia.Mul(h, w))
	}
	g.SetOutput("loss", mustNode(gorgonia.Sum(h)))
	return g
}

func TestMLPAndInceptionModules(t *testing.T) {
	for _, c := range []struct {
		name          string
		g             *graph.Graph
		p             float64
		erased, relus int // modules erased; ReLUs removed
	}{
		{"mlp p=0.5", mlpNet(t, 11), 0.5, 6, 6},
		{"mlp p=1", mlpNet(t, 11), 1, 11, 11},
		{"inception p=0.5", inceptionNet(t, 10), 0.5, 5, 15},
		{"inception p=0.25", inceptionNet(t, 10), 0.25, 3, 9},
	} {
		before := erase.CountReLUs(c.g)
		h, rep, err := erase.Apply(c.g, erase.Options{Proportion: c.p})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(rep.Erased) != c.erased || rep.ReLUsBefore != before || rep.ReLUsAfter != before-c.relus {
			t.Errorf("%s: erased %d modules, ReLUs %d -> %d; want %d modules, %d -> %d",
				c.name, len(rep.Erased), rep.ReLUsBefore, rep.ReLUsAfter, c.erased, before, before-c.relus)
		}
		if erase.CountReLUs(h) != rep.ReLUsAfter {
			t.Errorf("%s: report says %d ReLUs, graph has %d", c.name, rep.ReLUsAfter, erase.CountReLUs(h))
		}
	}
}

func TestPReLUReplacement(t *testing.T) {
	g := resNet(t, 4)
	h, rep, err := erase.Apply(g, erase.Options{Proportion: 1, Replacement: erase.PReLU})
	must(t, err)
	if rep.ReLUsAfter != 4 || rep.ParamsAfter != rep.ParamsBefore+4*6 {
		t.Fatalf("ReLUs after %d, params %d -> %d; want 4 and +24 slopes", rep.ReLUsAfter, rep.ParamsBefore, rep.ParamsAfter)
	}
	prelus := 0
	for _, n := range h.Expr().AllNodes() {
		if ops.IsPReLU(n) {
			prelus++
		}
	}
	if prelus != 4 {
		t.Errorf("%d PReLU nodes, want 4", prelus)
	}
	var last *graph.Param
	for _, p := range h.Params() {
		if p.Name == "block4/erase_prelu/alpha" {
			last = p
		}
	}
	if last == nil || !last.NoDecay {
		t.Fatalf("no parameter block4/erase_prelu/alpha without weight decay")
	}
	x, _ := h.Input("x")
	gx, _ := g.Input("x")
	must(t, gorgonia.Let(x, gx.Value()))
	p, err := graph.Compile(h, "loss")
	must(t, err)
	must(t, p.Train())
	grad, err := p.Grad(last)
	must(t, err)
	nonzero := false
	for _, v := range grad.Data().([]float64) {
		nonzero = nonzero || v != 0
	}
	if !nonzero {
		t.Error("the PReLU slopes get no gradient")
	}
}
