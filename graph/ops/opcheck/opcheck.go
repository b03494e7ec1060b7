// Package opcheck verifies ops numerically: symbolic gradients against
// central finite differences in float64, and float32 results against float64.
// Every op of the library is tested with it; users can test their own ops too.
package opcheck

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// gorgoniaTurn makes checks take turns: Gorgonia's Grad and tape machines
// share package-level constant nodes whose hashes they cache without a
// lock, so checks from parallel tests would race on them.
var gorgoniaTurn sync.Mutex

// Case describes one op application to check.
type Case struct {
	Name string
	// Inputs are float64 tensors bound to fresh variables x0, x1, ...
	Inputs []*tensor.Dense
	// Build applies the op under test to the input variables.
	Build func(g *gorgonia.ExprGraph, xs []*gorgonia.Node) (*gorgonia.Node, error)
	// WRT lists the inputs whose gradients are checked; nil means all.
	WRT []int
	// Eps is the finite-difference step (default 1e-6); Tol the largest
	// relative error allowed (default 1e-6).
	Eps, Tol float64
}

// Random returns a float64 tensor of the shape with entries uniform in [-1, 1).
func Random(rng *rand.Rand, shape ...int) *tensor.Dense {
	n := tensor.Shape(shape).TotalSize()
	v := make([]float64, n)
	for i := range v {
		v[i] = 2*rng.Float64() - 1
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(v))
}

// harness is a compiled graph: L = sum(op(xs) * r) for a fixed random r.
type harness struct {
	xs       []*gorgonia.Node
	out      *gorgonia.Node
	loss     *gorgonia.Node
	grads    gorgonia.Nodes
	train    gorgonia.VM
	forward  gorgonia.VM
	outValue gorgonia.Value
}

func build(c Case, dt tensor.Dtype, wrt []int, withGrad bool) (*harness, error) {
	g := gorgonia.NewGraph()
	h := &harness{}
	for i, in := range c.Inputs {
		v := convert(in, dt)
		x := gorgonia.NewTensor(g, dt, v.Dims(), gorgonia.WithShape(v.Shape()...), gorgonia.WithValue(v), gorgonia.WithName(fmt.Sprintf("x%d", i)))
		h.xs = append(h.xs, x)
	}
	out, err := c.Build(g, h.xs)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	h.out = out
	var rn *gorgonia.Node
	if out.IsScalar() {
		rn = gorgonia.NewConstant(castScalar(1.0, dt), gorgonia.WithName("r"))
	} else {
		r := Random(rand.New(rand.NewPCG(7, 7)), out.Shape()...)
		rn = gorgonia.NewConstant(convert(r, dt), gorgonia.WithName("r"))
	}
	prod, err := gorgonia.HadamardProd(out, rn)
	if err != nil {
		return nil, fmt.Errorf("loss product: %w", err)
	}
	if out.IsScalar() {
		h.loss = prod
	} else if h.loss, err = gorgonia.Sum(prod); err != nil {
		return nil, fmt.Errorf("loss sum: %w", err)
	}
	gorgonia.Read(out, &h.outValue)
	if withGrad {
		var wrtNodes gorgonia.Nodes
		for _, i := range wrt {
			wrtNodes = append(wrtNodes, h.xs[i])
		}
		if h.grads, err = gorgonia.Grad(h.loss, wrtNodes...); err != nil {
			return nil, fmt.Errorf("grad: %w", err)
		}
		h.train = gorgonia.NewTapeMachine(g, gorgonia.BindDualValues(wrtNodes...))
	}
	h.forward = gorgonia.NewTapeMachine(g.SubgraphRoots(h.loss, out))
	return h, nil
}

func castScalar(v float64, dt tensor.Dtype) interface{} {
	if dt == tensor.Float32 {
		return float32(v)
	}
	return v
}

func convert(t *tensor.Dense, dt tensor.Dtype) *tensor.Dense {
	src := t.Data().([]float64)
	if dt == tensor.Float64 {
		return tensor.New(tensor.WithShape(t.Shape().Clone()...), tensor.WithBacking(append([]float64(nil), src...)))
	}
	v := make([]float32, len(src))
	for i := range src {
		v[i] = float32(src[i])
	}
	return tensor.New(tensor.WithShape(t.Shape().Clone()...), tensor.WithBacking(v))
}

func run(vm gorgonia.VM) error {
	vm.Reset()
	return vm.RunAll()
}

func scalar(n *gorgonia.Node) float64 {
	switch v := n.Value().Data().(type) {
	case float64:
		return v
	case float32:
		return float64(v)
	case []float64:
		return v[0]
	case []float32:
		return float64(v[0])
	}
	panic(fmt.Sprintf("opcheck: loss value of type %T", n.Value().Data()))
}

// Gradients checks the symbolic gradients of c against central differences in float64.
func Gradients(t testing.TB, c Case) {
	t.Helper()
	gorgoniaTurn.Lock()
	defer gorgoniaTurn.Unlock()
	eps, tol := c.Eps, c.Tol
	if eps == 0 {
		eps = 1e-6
	}
	if tol == 0 {
		tol = 1e-6
	}
	wrt := c.WRT
	if wrt == nil {
		for i := range c.Inputs {
			wrt = append(wrt, i)
		}
	}
	h, err := build(c, tensor.Float64, wrt, true)
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	if err := run(h.train); err != nil {
		t.Fatalf("%s: training run: %v", c.Name, err)
	}
	symbolic := make([][]float64, len(wrt))
	for k, i := range wrt {
		gv, err := h.xs[i].Grad()
		if err != nil {
			t.Fatalf("%s: gradient of x%d: %v", c.Name, i, err)
		}
		symbolic[k] = append([]float64(nil), gv.Data().([]float64)...)
	}
	for k, i := range wrt {
		x := h.xs[i].Value().Data().([]float64)
		worst, at := 0.0, -1
		var num, sym float64
		for j := range x {
			orig := x[j]
			x[j] = orig + eps
			if err := run(h.forward); err != nil {
				t.Fatalf("%s: forward: %v", c.Name, err)
			}
			lp := scalar(h.loss)
			x[j] = orig - eps
			if err := run(h.forward); err != nil {
				t.Fatalf("%s: forward: %v", c.Name, err)
			}
			lm := scalar(h.loss)
			x[j] = orig
			n := (lp - lm) / (2 * eps)
			s := symbolic[k][j]
			if e := relErr(s, n); e > worst {
				worst, at, num, sym = e, j, n, s
			}
		}
		if worst > tol {
			t.Errorf("%s: d/dx%d: relative error %.3g at element %d (symbolic %.10g, numeric %.10g), tolerance %.1g",
				c.Name, i, worst, at, sym, num, tol)
		}
	}
}

// relErr is |a-b| relative to the larger magnitude, with magnitudes below
// 1e-3 treated as 1e-3 so that near-zero entries are compared absolutely.
func relErr(a, b float64) float64 {
	d := math.Max(math.Max(math.Abs(a), math.Abs(b)), 1e-3)
	return math.Abs(a-b) / d
}

// Float32Agrees runs c in float32 and float64 and checks that the outputs and
// the gradients agree within tol (relative, as in Gradients).
func Float32Agrees(t testing.TB, c Case, tol float64) {
	t.Helper()
	gorgoniaTurn.Lock()
	defer gorgoniaTurn.Unlock()
	var wrt []int
	if c.WRT != nil {
		wrt = c.WRT
	} else {
		for i := range c.Inputs {
			wrt = append(wrt, i)
		}
	}
	results := map[tensor.Dtype][][]float64{}
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		h, err := build(c, dt, wrt, true)
		if err != nil {
			t.Fatalf("%s (%v): %v", c.Name, dt, err)
		}
		if err := run(h.train); err != nil {
			t.Fatalf("%s (%v): run: %v", c.Name, dt, err)
		}
		vals := [][]float64{asFloat64(h.outValue)}
		for _, i := range wrt {
			gv, err := h.xs[i].Grad()
			if err != nil {
				t.Fatalf("%s (%v): gradient of x%d: %v", c.Name, dt, i, err)
			}
			vals = append(vals, asFloat64(gv))
		}
		results[dt] = vals
	}
	a, b := results[tensor.Float64], results[tensor.Float32]
	for k := range a {
		what := "output"
		if k > 0 {
			what = fmt.Sprintf("d/dx%d", wrt[k-1])
		}
		for j := range a[k] {
			if e := relErr(a[k][j], b[k][j]); e > tol {
				t.Errorf("%s: %s element %d: float64 %.8g, float32 %.8g (relative %.3g > %.1g)", c.Name, what, j, a[k][j], b[k][j], e, tol)
				break
			}
		}
	}
}

func asFloat64(v gorgonia.Value) []float64 {
	switch d := v.Data().(type) {
	case []float64:
		return append([]float64(nil), d...)
	case []float32:
		out := make([]float64, len(d))
		for i := range d {
			out[i] = float64(d[i])
		}
		return out
	case float64:
		return []float64{d}
	case float32:
		return []float64{float64(d)}
	}
	panic(fmt.Sprintf("opcheck: value of type %T", v.Data()))
}
