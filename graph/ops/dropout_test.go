package ops_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/graph/ops"
	"github.com/eraserelu/eraserelu/graph/ops/opcheck"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestDropoutGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct {
		shape    []int
		p        float64
		training bool
	}{
		{[]int{4, 5}, 0.5, true},
		{[]int{2, 3, 2, 3}, 0.2, true},
		{[]int{7}, 0.9, true},
		{[]int{3, 4}, 0, true},
		{[]int{2, 3, 2, 2}, 0.5, false},
	} {
		oc := opcheck.Case{
			Name:   fmt.Sprintf("Dropout%v/p=%v/training=%v", tc.shape, tc.p, tc.training),
			Inputs: []*tensor.Dense{opcheck.Random(rng, tc.shape...)},
			Build: func(_ *gorgonia.ExprGraph, xs []*gorgonia.Node) (*gorgonia.Node, error) {
				mode := ops.NewMode()
				mode.SetTraining(tc.training)
				y, err := ops.Dropout(xs[0], tc.p, mode, 42)
				if err != nil {
					return nil, err
				}
				// the finite differences rerun the forward: keep its mask
				y.Op().(*ops.DropoutOp).FreezeMask(true)
				return y, nil
			},
		}
		opcheck.Gradients(t, oc)
		opcheck.Float32Agrees(t, oc, 1e-5)
	}
}

// ntGateNet is y = op(x), loss = sum(y*r), compiled with gradients.
type ntGateNet struct {
	x, y, loss *gorgonia.Node
	dx         *gorgonia.Node // the gradient node (x.Grad() would accumulate over runs)
	xv, rv     *tensor.Dense
	vm         gorgonia.VM
}

func ntNewGateNet(t *testing.T, n int, apply func(*gorgonia.Node) (*gorgonia.Node, error)) *ntGateNet {
	t.Helper()
	g := gorgonia.NewGraph()
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	gn := &ntGateNet{xv: tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(n)), rv: opcheck.Random(rng, n)}
	for i := range gn.xv.Float64s() {
		gn.xv.Float64s()[i] = 1 + rng.Float64() // nonzero
	}
	gn.x = gorgonia.NewVector(g, tensor.Float64, gorgonia.WithShape(n), gorgonia.WithName("x"), gorgonia.WithValue(gn.xv))
	var err error
	if gn.y, err = apply(gn.x); err != nil {
		t.Fatal(err)
	}
	r := gorgonia.NewConstant(gn.rv, gorgonia.WithName("r"))
	gn.loss = gorgonia.Must(gorgonia.Sum(gorgonia.Must(gorgonia.HadamardProd(gn.y, r))))
	grads, err := gorgonia.Grad(gn.loss, gn.x)
	if err != nil {
		t.Fatal(err)
	}
	gn.dx = grads[0]
	gn.vm = gorgonia.NewTapeMachine(g, gorgonia.BindDualValues(gn.x))
	return gn
}

func (gn *ntGateNet) step(t *testing.T) (y, dx []float64) {
	t.Helper()
	ntRun(t, gn.vm)
	return ntValue(gn.y.Value()), ntValue(gn.dx.Value())
}

func TestDropoutTraining(t *testing.T) {
	const n, p = 100000, 0.3
	mode := ops.NewMode()
	var op *ops.DropoutOp
	gn := ntNewGateNet(t, n, func(x *gorgonia.Node) (*gorgonia.Node, error) {
		y, err := ops.Dropout(x, p, mode, 1)
		if err == nil {
			op = y.Op().(*ops.DropoutOp)
		}
		return y, err
	})
	if !ops.IsDropout(gn.y) || op.Rate() != p {
		t.Fatal("not a dropout node of rate p")
	}
	x, r := gn.xv.Float64s(), gn.rv.Float64s()
	y1, dx := gn.step(t)
	kept, sumY, sumX := 0, 0.0, 0.0
	for i := range x {
		switch {
		case y1[i] == 0:
			if dx[i] != 0 {
				t.Fatalf("dropped element %d has gradient %v", i, dx[i])
			}
		default:
			kept++
			if want := x[i] / (1 - p); math.Abs(y1[i]-want) > 1e-15*want {
				t.Fatalf("kept element %d: %v, want x/(1-p) = %v", i, y1[i], want)
			}
			if want := r[i] / (1 - p); math.Abs(dx[i]-want) > 1e-15*math.Abs(want) {
				t.Fatalf("kept element %d: gradient %v, want r/(1-p) = %v (same mask as the forward)", i, dx[i], want)
			}
		}
		sumY += y1[i]
		sumX += x[i]
	}
	// fraction kept ~ Binomial(n, 1-p)/n, E[y] = x: within 5 standard deviations
	if f, sd := float64(kept)/n, math.Sqrt(p*(1-p)/n); math.Abs(f-(1-p)) > 5*sd {
		t.Errorf("kept fraction %v, want %v ± %v", f, 1-p, 5*sd)
	}
	if rel, sd := sumY/sumX, math.Sqrt(p/(1-p)/n)*1.1; math.Abs(rel-1) > 5*sd {
		t.Errorf("sum(y)/sum(x) = %v, want 1 ± %v", rel, 5*sd)
	}
	// a new mask each forward
	y2, _ := gn.step(t)
	if ntEqual(y1, y2) {
		t.Error("two training forwards drew the same mask")
	}
	// inference: the identity, gradient dy
	mode.SetTraining(false)
	y3, dx3 := gn.step(t)
	if !ntEqual(y3, x) || !ntEqual(dx3, r) {
		t.Error("inference dropout is not the identity")
	}
}

func TestDropoutSeeds(t *testing.T) {
	masks := func(seed uint64) [][]float64 {
		mode := ops.NewMode()
		gn := ntNewGateNet(t, 1000, func(x *gorgonia.Node) (*gorgonia.Node, error) { return ops.Dropout(x, 0.5, mode, seed) })
		var out [][]float64
		for i := 0; i < 3; i++ {
			y, _ := gn.step(t)
			out = append(out, y)
		}
		return out
	}
	a, b, c := masks(11), masks(11), masks(12)
	for i := range a {
		if !ntEqual(a[i], b[i]) {
			t.Errorf("forward %d: the same seed gave different masks", i)
		}
		if ntEqual(a[i], c[i]) {
			t.Errorf("forward %d: different seeds gave the same mask", i)
		}
	}
}

func TestDropoutErrors(t *testing.T) {
	g := gorgonia.NewGraph()
	x := gorgonia.NewVector(g, tensor.Float64, gorgonia.WithShape(3), gorgonia.WithName("x"))
	for _, p := range []float64{-0.1, 1, 1.5, math.NaN()} {
		if _, err := ops.Dropout(x, p, ops.NewMode(), 0); err == nil || !strings.Contains(err.Error(), "outside [0, 1)") {
			t.Errorf("p = %v: error %v", p, err)
		}
	}
	if _, err := ops.Dropout(x, 0.5, nil, 0); err == nil {
		t.Error("nil mode accepted")
	}
}
