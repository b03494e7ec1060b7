package graph_test

import (
	"testing"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// tinyMLP builds n modules of x -> relu(x W_i) on a fixed input, with loss sum(out^2).
func tinyMLP(t *testing.T, n int) *graph.Graph {
	t.Helper()
	g := graph.New(tensor.Float64, 1)
	x := g.NewInput("x", tensor.Float64, 4, 3)
	if err := gorgonia.Let(x, tensor.New(tensor.WithShape(4, 3), tensor.WithBacking([]float64{1, -2, 3, 0.5, 1, -1, 2, 2, -3, 0.1, 0.2, 0.3}))); err != nil {
		t.Fatal(err)
	}
	h := x
	for i := 0; i < n; i++ {
		var err error
		h, err = g.Build(blockName(i), graph.MLP, func() (*gorgonia.Node, error) {
			w := g.NewParam("w", []int{3, 3}, graph.HeNormal(), false)
			z, err := gorgonia.Mul(h, w)
			if err != nil {
				return nil, err
			}
			return ops.ReLU(z)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sq, err := gorgonia.Square(h)
	if err != nil {
		t.Fatal(err)
	}
	loss, err := gorgonia.Sum(sq)
	if err != nil {
		t.Fatal(err)
	}
	g.SetOutput("loss", loss)
	return g
}

func blockName(i int) string { return "block" + string(rune('a'+i)) }

func TestBuildRecordsModules(t *testing.T) {
	g := tinyMLP(t, 3)
	mods := g.Modules()
	if len(mods) != 3 {
		t.Fatalf("got %d modules, want 3", len(mods))
	}
	for i, m := range mods {
		if m.Name != blockName(i) || m.Kind != graph.MLP {
			t.Errorf("module %d: %s/%s", i, m.Name, m.Kind)
		}
		if !ops.IsReLU(m.Output) || len(m.Members) != 2 {
			t.Errorf("module %s: output %v, %d members, want ReLU and 2", m.Name, m.Output, len(m.Members))
		}
	}
	if got := g.Params()[1].Name; got != "blockb/w" {
		t.Errorf("param name %q, want blockb/w", got)
	}
}

func TestFaithfulRewriteIsBitwiseEqual(t *testing.T) {
	g := tinyMLP(t, 3)
	h, m, err := graph.Rewrite(g, nil, graph.RewriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Modules()) != 3 || len(h.Params()) != 3 {
		t.Fatalf("rewrite has %d modules, %d params", len(h.Modules()), len(h.Params()))
	}
	if h.Params()[0].Node.Value() != g.Params()[0].Node.Value() {
		t.Error("parameters are not shared")
	}
	x, _ := h.Input("x")
	if err := gorgonia.Let(x, g.Params()[0].Node.Graph().AllNodes()[0].Value()); err != nil {
		t.Fatal(err)
	}
	if m[g.Modules()[2].Output] != h.Modules()[2].Output {
		t.Error("module output not mapped")
	}
	var losses []float64
	for _, gr := range []*graph.Graph{g, h} {
		p, err := graph.Compile(gr, "loss")
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Train(); err != nil {
			t.Fatal(err)
		}
		losses = append(losses, p.Loss())
		p.Close()
	}
	if losses[0] != losses[1] || losses[0] == 0 {
		t.Errorf("losses %v differ (or are zero)", losses)
	}
}

// TestBackpropMatchesGorgonia compares Compile's gradients with gorgonia.Grad
// on identical graphs.
func TestBackpropMatchesGorgonia(t *testing.T) {
	ours := tinyMLP(t, 4)
	ref := tinyMLP(t, 4)
	p, err := graph.Compile(ours, "loss")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Train(); err != nil {
		t.Fatal(err)
	}
	loss, _ := ref.Output("loss")
	if _, err := gorgonia.Grad(loss, ref.ParamNodes()...); err != nil {
		t.Fatal(err)
	}
	vm := gorgonia.NewTapeMachine(ref.Expr(), gorgonia.BindDualValues(ref.ParamNodes()...))
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	for i, prm := range ours.Params() {
		got, err := p.Grad(prm)
		if err != nil {
			t.Fatal(err)
		}
		wantV, err := ref.Params()[i].Node.Grad()
		if err != nil {
			t.Fatal(err)
		}
		want := wantV.Data().([]float64)
		for j, v := range got.Data().([]float64) {
			if d := v - want[j]; d > 1e-12 || d < -1e-12 {
				t.Fatalf("%s[%d]: %v, gorgonia %v", prm.Name, j, v, want[j])
			}
		}
	}
	if err := p.Train(); err != nil {
		t.Fatal(err)
	}
	if _, err := graph.Compile(ours, "loss"); err == nil {
		t.Error("compiling a graph twice did not fail")
	}
}

// TestInputGradients checks d loss / d x against central differences.
func TestInputGradients(t *testing.T) {
	g := tinyMLP(t, 2)
	p, err := graph.Compile(g, "loss", graph.WithInputGradients("x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Train(); err != nil {
		t.Fatal(err)
	}
	dx, err := p.InputGrad("x")
	if err != nil {
		t.Fatal(err)
	}
	grad := append([]float64(nil), dx.Data().([]float64)...)
	x, _ := g.Input("x")
	xs := x.Value().Data().([]float64)
	for i := range xs {
		orig := xs[i]
		loss := func(v float64) float64 {
			xs[i] = v
			if err := p.Infer(); err != nil {
				t.Fatal(err)
			}
			return p.Loss()
		}
		num := (loss(orig+1e-6) - loss(orig-1e-6)) / 2e-6
		xs[i] = orig
		if d := num - grad[i]; d > 1e-5 || d < -1e-5 {
			t.Errorf("d loss/d x[%d] = %v, numeric %v", i, grad[i], num)
		}
	}
	if _, err := p.InputGrad("nope"); err == nil {
		t.Error("no error for an input without a compiled gradient")
	}
}
