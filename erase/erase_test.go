package erase_test

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestSelect(t *testing.T) {
	for _, n := range []int{1, 3, 10, 30} {
		for _, p := range []float64{0, 0.05, 0.25, 0.5, 0.75, 1} {
			got := erase.Select(n, p)
			want := int(math.Ceil(float64(n)*p - 1e-9))
			if len(got) != want {
				t.Errorf("Select(%d, %v) chose %d modules %v, want ceil(n·p) = %d", n, p, len(got), got, want)
			}
			if p > 0 && got[0] != 0 {
				t.Errorf("Select(%d, %v) = %v does not start with module 1", n, p, got)
			}
			if !slices.IsSorted(got) {
				t.Errorf("Select(%d, %v) = %v is not in order", n, p, got)
			}
		}
	}
	for _, c := range []struct {
		n    int
		p    float64
		want []int
	}{
		{10, 0.5, []int{0, 2, 4, 6, 8}},
		{12, 0.25, []int{0, 4, 8}},
		{4, 0.75, []int{0, 1, 2}},
		{20, 0.05, []int{0}},
		{3, 1, []int{0, 1, 2}},
	} {
		if got := erase.Select(c.n, c.p); !slices.Equal(got, c.want) {
			t.Errorf("Select(%d, %v) = %v, want %v", c.n, c.p, got, c.want)
		}
	}
}

// resNet builds n residual modules relu(x + relu(x W1) W2) on a fixed batch,
// then a linear read-out and a squared-error loss.
func resNet(t testing.TB, n int) *graph.Graph {
	t.Helper()
	const width = 6
	g := graph.New(tensor.Float64, 3)
	x := g.NewInput("x", tensor.Float64, 5, width)
	xs := make([]float64, 5*width)
	for i := range xs {
		xs[i] = math.Sin(float64(i))
	}
	must(t, gorgonia.Let(x, tensor.New(tensor.WithShape(5, width), tensor.WithBacking(xs))))
	h := x
	for i := 0; i < n; i++ {
		var err error
		h, err = g.Build(fmt.Sprintf("block%d", i+1), graph.Residual, func() (*gorgonia.Node, error) {
			w1 := g.NewParam("w1", []int{width, width}, graph.HeNormal(), false)
			w2 := g.NewParam("w2", []int{width, width}, graph.HeNormal(), false)
			a := mustNode(gorgonia.Mul(h, w1))
			a = mustNode(ops.ReLU(a))
			b := mustNode(gorgonia.Mul(a, w2))
			return ops.ReLU(mustNode(gorgonia.Add(h, b)))
		})
		must(t, err)
	}
	wo := g.NewParam("head", []int{width, 1}, graph.HeNormal(), false)
	y := mustNode(gorgonia.Mul(h, wo))
	g.SetOutput("out", y)
	loss := mustNode(gorgonia.Sum(mustNode(gorgonia.Square(mustNode(gorgonia.Sub(y, gorgonia.NewConstant(0.5)))))))
	g.SetOutput("loss", loss)
	return g
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustNode(n *gorgonia.Node, err error) *gorgonia.Node {
	if err != nil {
		panic(err)
	}
	return n
}

func TestStructure(t *testing.T) {
	for _, n := range []int{1, 3, 10, 30} {
		for _, p := range []float64{0, 0.05, 0.25, 0.5, 0.75, 1} {
			g := resNet(t, n)
			h, rep, err := erase.Apply(g, erase.Options{Proportion: p})
			must(t, err)
			k := len(erase.Select(n, p))
			if len(rep.Erased) != k || rep.Candidates != n {
				t.Fatalf("n=%d p=%v: erased %d of %d, want %d of %d", n, p, len(rep.Erased), rep.Candidates, k, n)
			}
			if rep.ReLUsBefore != 2*n || rep.ReLUsAfter != 2*n-k {
				t.Errorf("n=%d p=%v: ReLUs %d -> %d, want %d -> %d", n, p, rep.ReLUsBefore, rep.ReLUsAfter, 2*n, 2*n-k)
			}
			if rep.ParamsBefore != rep.ParamsAfter || h.ParamCount() != g.ParamCount() {
				t.Errorf("n=%d p=%v: parameter count changed", n, p)
			}
			chosen := map[string]bool{}
			for _, i := range erase.Select(n, p) {
				chosen[fmt.Sprintf("block%d", i+1)] = true
			}
			for _, m := range h.Modules() {
				// An erased module ends at the residual add; the others still end in a ReLU.
				if chosen[m.Name] == ops.IsReLU(m.Output) {
					t.Errorf("n=%d p=%v: module %s erased=%v but its output is %v", n, p, m.Name, chosen[m.Name], m.Output.Op())
				}
				if got := countReLU(m.Members); got != 2-b2i(chosen[m.Name]) {
					t.Errorf("n=%d p=%v: module %s has %d ReLUs", n, p, m.Name, got)
				}
			}
		}
	}
}

func countReLU(ns []*gorgonia.Node) int {
	c := 0
	for _, n := range ns {
		if ops.IsReLU(n) {
			c++
		}
	}
	return c
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestFirstLocationAndNames(t *testing.T) {
	g := resNet(t, 4)
	h, rep, err := erase.Apply(g, erase.Options{Modules: []string{"block2", "block4"}, Location: erase.First})
	must(t, err)
	if !slices.Equal(rep.Erased, []string{"block2", "block4"}) || rep.ReLUsAfter != 6 {
		t.Fatalf("report %+v", rep)
	}
	for _, m := range h.Modules() {
		if !ops.IsReLU(m.Output) {
			t.Errorf("module %s lost its trailing ReLU under Location First", m.Name)
		}
	}
	h, rep, err = erase.Apply(g, erase.Options{Proportion: 1, Location: erase.All})
	must(t, err)
	if rep.ReLUsAfter != 0 || erase.CountReLUs(h) != 0 {
		t.Errorf("Location All left %d ReLUs", rep.ReLUsAfter)
	}
}

func TestErrors(t *testing.T) {
	g := resNet(t, 2)
	for _, c := range []struct {
		opt  erase.Options
		want string
	}{
		{erase.Options{Proportion: -0.1}, "outside [0, 1]"},
		{erase.Options{Proportion: 1.5}, "outside [0, 1]"},
		{erase.Options{Proportion: math.NaN()}, "outside [0, 1]"},
		{erase.Options{Modules: []string{"block9"}}, `no module named "block9"`},
		{erase.Options{Proportion: 0.5, Modules: []string{"block1"}}, "not both"},
		{erase.Options{Proportion: 1, Kinds: []graph.Kind{graph.Inception}}, "no modules of kind"},
	} {
		_, _, err := erase.Apply(g, c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one containing %q", c.opt, err, c.want)
		}
	}
	// A module whose output is not a ReLU (a pre-activation block) says so.
	g = graph.New(tensor.Float64, 1)
	x := g.NewInput("x", tensor.Float64, 2, 2)
	_, err := g.Build("preact", graph.Residual, func() (*gorgonia.Node, error) {
		r := mustNode(ops.ReLU(x))
		return gorgonia.Add(x, r)
	})
	must(t, err)
	_, _, err = erase.Apply(g, erase.Options{Proportion: 1})
	if err == nil || !strings.Contains(err.Error(), "module preact has no trailing ReLU") {
		t.Errorf("error %v, want one naming module preact", err)
	}
	if _, _, err = erase.Apply(g, erase.Options{Proportion: 1, Location: erase.First}); err != nil {
		t.Errorf("First location on a pre-activation block: %v", err)
	}
}

func TestFaithfulCopyAndSharing(t *testing.T) {
	g := resNet(t, 5)
	h, _, err := erase.Apply(g, erase.Options{Proportion: 0})
	must(t, err)
	x, _ := h.Input("x")
	gx, _ := g.Input("x")
	must(t, gorgonia.Let(x, gx.Value()))
	pg, err := graph.Compile(g, "loss")
	must(t, err)
	ph, err := graph.Compile(h, "loss")
	must(t, err)
	must(t, pg.Train())
	must(t, ph.Train())
	if pg.Loss() != ph.Loss() {
		t.Errorf("p=0 copy computes loss %v, original %v", ph.Loss(), pg.Loss())
	}
	for i, p := range h.Params() {
		if p.Node.Value() != g.Params()[i].Node.Value() || p.Name != g.Params()[i].Name {
			t.Fatalf("param %d not shared", i)
		}
	}
	c, _, err := erase.Apply(g, erase.Options{Proportion: 0.5, CopyParams: true})
	must(t, err)
	if c.Params()[0].Node.Value() == g.Params()[0].Node.Value() {
		t.Error("CopyParams shares the parameter tensor")
	}
}

// TestErasedGraphTrains takes plain gradient steps on the erased graph and
// checks that the loss falls and that the shared weights move in the original.
func TestErasedGraphTrains(t *testing.T) {
	g := resNet(t, 6)
	before := g.Params()[0].Node.Value().Data().([]float64)[0]
	h, _, err := erase.Apply(g, erase.Options{Proportion: 0.5})
	must(t, err)
	x, _ := h.Input("x")
	gx, _ := g.Input("x")
	must(t, gorgonia.Let(x, gx.Value()))
	p, err := graph.Compile(h, "loss")
	must(t, err)
	var first, last float64
	for step := 0; step < 30; step++ {
		must(t, p.Train())
		if step == 0 {
			first = p.Loss()
		}
		last = p.Loss()
		for _, prm := range h.Params() {
			grad, err := p.Grad(prm)
			must(t, err)
			w := prm.Node.Value().Data().([]float64)
			for i, gv := range grad.Data().([]float64) {
				w[i] -= 0.01 * gv
			}
		}
	}
	if !(last < 0.5*first) {
		t.Errorf("loss %v -> %v: did not fall by half", first, last)
	}
	if after := g.Params()[0].Node.Value().Data().([]float64)[0]; after == before {
		t.Error("training the erased graph did not move the original's shared weights")
	}
}
