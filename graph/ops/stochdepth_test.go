package ops_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/eraserelu/eraserelu/graph/ops"
	"github.com/eraserelu/eraserelu/graph/ops/opcheck"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestStochasticDepthGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, tc := range []struct {
		shape    []int
		survival float64
		seed     uint64
		training bool
	}{
		{[]int{2, 3, 2, 2}, 0.5, 1, true},
		{[]int{2, 3, 2, 2}, 0.5, 2, true},
		{[]int{3, 4}, 1, 3, true},
		{[]int{2, 3, 2, 2}, 0.8, 4, false},
	} {
		oc := opcheck.Case{
			Name:   fmt.Sprintf("StochasticDepth%v/s=%v/seed=%d/training=%v", tc.shape, tc.survival, tc.seed, tc.training),
			Inputs: []*tensor.Dense{opcheck.Random(rng, tc.shape...)},
			Build: func(_ *gorgonia.ExprGraph, xs []*gorgonia.Node) (*gorgonia.Node, error) {
				mode := ops.NewMode()
				mode.SetTraining(tc.training)
				y, err := ops.StochasticDepth(xs[0], tc.survival, mode, tc.seed)
				if err != nil {
					return nil, err
				}
				y.Op().(*ops.StochasticDepthOp).FreezeGate(true)
				return y, nil
			},
		}
		opcheck.Gradients(t, oc)
		opcheck.Float32Agrees(t, oc, 1e-5)
	}
}

func TestStochasticDepthGate(t *testing.T) {
	const survival, steps = 0.7, 400
	mode := ops.NewMode()
	var op *ops.StochasticDepthOp
	gn := ntNewGateNet(t, 50, func(x *gorgonia.Node) (*gorgonia.Node, error) {
		y, err := ops.StochasticDepth(x, survival, mode, 5)
		if err == nil {
			op = y.Op().(*ops.StochasticDepthOp)
		}
		return y, err
	})
	if !ops.IsStochasticDepth(gn.y) || op.Survival() != survival {
		t.Fatal("not a stochastic-depth node")
	}
	x, r := gn.xv.Float64s(), gn.rv.Float64s()
	kept := 0
	var decisions []bool
	for s := 0; s < steps; s++ {
		y, dx := gn.step(t)
		switch {
		case ntEqual(y, x) && ntEqual(dx, r):
			kept++
			if !op.Kept() {
				t.Fatalf("step %d: branch kept but Kept() is false", s)
			}
		case ntEqual(y, make([]float64, len(x))) && ntEqual(dx, make([]float64, len(x))):
			if op.Kept() {
				t.Fatalf("step %d: branch dropped but Kept() is true", s)
			}
		default:
			t.Fatalf("step %d: neither all kept nor all dropped", s)
		}
		decisions = append(decisions, op.Kept())
	}
	if f, sd := float64(kept)/steps, math.Sqrt(survival*(1-survival)/steps); math.Abs(f-survival) > 5*sd {
		t.Errorf("kept %v of the steps, want %v ± %v", f, survival, 5*sd)
	}
	// inference: branch * survival
	mode.SetTraining(false)
	y, dx := gn.step(t)
	for i := range x {
		if y[i] != x[i]*survival || dx[i] != r[i]*survival {
			t.Fatalf("inference element %d: y %v dx %v, want %v and %v", i, y[i], dx[i], x[i]*survival, r[i]*survival)
		}
	}
	// the same seed replays the same decisions
	mode2 := ops.NewMode()
	var op2 *ops.StochasticDepthOp
	gn2 := ntNewGateNet(t, 50, func(x *gorgonia.Node) (*gorgonia.Node, error) {
		y, err := ops.StochasticDepth(x, survival, mode2, 5)
		if err == nil {
			op2 = y.Op().(*ops.StochasticDepthOp)
		}
		return y, err
	})
	for s := range decisions {
		gn2.step(t)
		if op2.Kept() != decisions[s] {
			t.Fatalf("step %d: the same seed gave a different decision", s)
		}
	}
}

func TestStochasticDepthErrors(t *testing.T) {
	g := gorgonia.NewGraph()
	x := gorgonia.NewVector(g, tensor.Float64, gorgonia.WithShape(3), gorgonia.WithName("x"))
	for _, s := range []float64{0, -1, 1.01, math.NaN()} {
		if _, err := ops.StochasticDepth(x, s, ops.NewMode(), 0); err == nil {
			t.Errorf("survival %v accepted", s)
		}
	}
}
