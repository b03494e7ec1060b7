package graph_test

import (
	"math"
	"testing"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestGorgoniaActivationsRecognised builds Gorgonia v0.9.18's own Rectify,
// LeakyRelu and Sigmoid and checks what IsReLU and Activation make of them.
func TestGorgoniaActivationsRecognised(t *testing.T) {
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		eg := gorgonia.NewGraph()
		x := gorgonia.NewMatrix(eg, dt, gorgonia.WithShape(2, 3), gorgonia.WithName("x"))
		r := gorgonia.Must(gorgonia.Rectify(x))
		if in, ok := graph.ReLUInput(r); !ok || in != x || graph.Activation(r) != "ReLU" {
			t.Fatalf("%v: gorgonia.Rectify's last node %v is not a ReLU of x", dt, r)
		}
		for _, n := range graph.Children(r) {
			if graph.IsReLU(n) {
				t.Fatalf("%v: %v inside the Rectify pattern reads as a ReLU", dt, n)
			}
		}
		if a := graph.Activation(gorgonia.Must(gorgonia.LeakyRelu(x, 0.1))); a != "gorgonia.LeakyRelu" {
			t.Fatalf("%v: LeakyRelu reads as %q", dt, a)
		}
		if a := graph.Activation(gorgonia.Must(gorgonia.Sigmoid(x))); a != "gorgonia.Sigmoid" {
			t.Fatalf("%v: Sigmoid reads as %q", dt, a)
		}
		// x ⊙ (x >= 1) is not a rectifier, nor x ⊙ (y >= 0).
		one := gorgonia.NewConstant(oneOf(dt))
		if graph.IsReLU(gorgonia.Must(gorgonia.HadamardProd(x, gorgonia.Must(gorgonia.Gte(x, one, true))))) {
			t.Fatalf("%v: x ⊙ (x >= 1) reads as a ReLU", dt)
		}
		y := gorgonia.NewMatrix(eg, dt, gorgonia.WithShape(2, 3), gorgonia.WithName("y"))
		if graph.IsReLU(gorgonia.Must(gorgonia.HadamardProd(x, graph.Children(gorgonia.Must(gorgonia.Rectify(y)))[1]))) {
			t.Fatalf("%v: x ⊙ (y >= 0) reads as a ReLU", dt)
		}
	}
}

func oneOf(dt tensor.Dtype) interface{} {
	if dt == tensor.Float32 {
		return float32(1)
	}
	return 1.0
}

// rectifyMLP is h = Rectify(h·W_i + h) three times and a mean-square
// loss, in plain Gorgonia calls, its modules marked.
func rectifyMLP(t *testing.T) *graph.Graph {
	t.Helper()
	eg := gorgonia.NewGraph()
	g := graph.Wrap(eg, tensor.Float64, 1)
	val := func(n int, phase float64) *tensor.Dense {
		v := make([]float64, n)
		for i := range v {
			v[i] = math.Sin(1.7*float64(i) + phase)
		}
		return tensor.New(tensor.WithShape(n), tensor.WithBacking(v))
	}
	xv := val(24, 0)
	must(t, xv.Reshape(4, 6))
	x := gorgonia.NewMatrix(eg, tensor.Float64, gorgonia.WithShape(4, 6), gorgonia.WithName("x"), gorgonia.WithValue(xv))
	g.SetInput("x", x)
	h := x
	for i := 1; i <= 3; i++ {
		wv := val(36, float64(i))
		must(t, wv.Reshape(6, 6))
		w := gorgonia.NewMatrix(eg, tensor.Float64, gorgonia.WithShape(6, 6), gorgonia.WithName("w"+string(rune('0'+i))), gorgonia.WithValue(wv))
		_, err := g.AddParam(w, false)
		must(t, err)
		in := h
		h = gorgonia.Must(gorgonia.Rectify(gorgonia.Must(gorgonia.Add(gorgonia.Must(gorgonia.Mul(in, w)), in))))
		must(t, g.MarkModule("layer"+string(rune('0'+i)), graph.Residual, h, in))
	}
	g.SetOutput("loss", gorgonia.Must(gorgonia.Mean(gorgonia.Must(gorgonia.Square(h)))))
	return g
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestCanonicalizeRectify: every gorgonia.Rectify becomes one ops.ReLU,
// modules end in it, and the canonical graph's loss and gradients on the
// project's executor equal gorgonia.Grad's on the original.
func TestCanonicalizeRectify(t *testing.T) {
	g := rectifyMLP(t)
	c, mapping, err := graph.Canonicalize(g)
	must(t, err)
	relus, compares := 0, 0
	for _, n := range c.Expr().AllNodes() {
		if ops.IsReLU(n) {
			relus++
		}
		if n.Op() != nil && n.Op().String() == ">= true" {
			compares++
		}
	}
	if relus != 3 || compares != 0 {
		t.Fatalf("canonical graph: %d ReLU ops and %d comparisons, want 3 and 0", relus, compares)
	}
	for i, m := range c.Modules() {
		if !ops.IsReLU(m.Output) || mapping[g.Modules()[i].Output] != m.Output {
			t.Fatalf("module %s ends in %v, want the ReLU op the Rectify became", m.Name, m.Output)
		}
	}
	if again, m2, err := graph.Canonicalize(c); err != nil || again != c || m2 != nil {
		t.Fatalf("canonicalizing a canonical graph: %v, %v, %v; want it unchanged", again == c, m2, err)
	}

	p, err := graph.Compile(c, "loss")
	must(t, err)
	defer p.Close()
	must(t, p.Train())
	loss, _ := g.Output("loss")
	_, err = gorgonia.Grad(loss, g.ParamNodes()...)
	must(t, err)
	vm := gorgonia.NewTapeMachine(g.Expr(), gorgonia.BindDualValues(g.ParamNodes()...))
	defer vm.Close()
	must(t, vm.RunAll())
	if a, b := p.Loss(), graph.ScalarOf(loss.Value()); math.Abs(a-b) > 1e-12 {
		t.Fatalf("loss %v canonical, %v with gorgonia.Rectify", a, b)
	}
	for i, prm := range c.Params() {
		got, err := p.Grad(prm)
		must(t, err)
		wv, err := g.Params()[i].Node.Grad()
		must(t, err)
		want := wv.Data().([]float64)
		for j, v := range got.Data().([]float64) {
			if math.Abs(v-want[j]) > 1e-12 {
				t.Fatalf("d loss / d %s[%d]: %v canonical, %v with gorgonia.Rectify", prm.Name, j, v, want[j])
			}
		}
	}
}

// TestCanonicalizeSharedComparison: a Rectify whose comparison x >= 0 is
// also read elsewhere still becomes a ReLU; the comparison stays.
func TestCanonicalizeSharedComparison(t *testing.T) {
	eg := gorgonia.NewGraph()
	g := graph.Wrap(eg, tensor.Float64, 1)
	x := gorgonia.NewMatrix(eg, tensor.Float64, gorgonia.WithShape(2, 3), gorgonia.WithName("x"))
	g.SetInput("x", x)
	r := gorgonia.Must(gorgonia.Rectify(x))
	mask := graph.Children(r)[1]
	g.SetOutput("mask", mask)
	g.SetOutput("relu", r)
	c, _, err := graph.Canonicalize(g)
	must(t, err)
	out, _ := c.Output("relu")
	m, _ := c.Output("mask")
	if !ops.IsReLU(out) || m.Op() == nil || m.Op().String() != ">= true" {
		t.Fatalf("relu output %v, mask output %v; want a ReLU op and the comparison", out, m)
	}
}
