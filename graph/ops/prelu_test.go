package ops_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/graph/ops"
	"github.com/eraserelu/eraserelu/graph/ops/opcheck"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestPReLUGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, shape := range [][]int{{4, 3}, {2, 3, 2, 2}, {1, 1, 3, 3}, {3, 5, 1, 2}} {
		c := shape[1]
		oc := opcheck.Case{
			Name:   fmt.Sprintf("PReLU%v", shape),
			Inputs: []*tensor.Dense{opcheck.Random(rng, shape...), opcheck.Random(rng, c)},
			Build: func(_ *gorgonia.ExprGraph, xs []*gorgonia.Node) (*gorgonia.Node, error) {
				return ops.PReLU(xs[0], xs[1])
			},
		}
		opcheck.Gradients(t, oc)
		opcheck.Float32Agrees(t, oc, 1e-5)
	}
}

func TestPReLUValues(t *testing.T) {
	g := gorgonia.NewGraph()
	x := gorgonia.NewTensor(g, tensor.Float64, 4, gorgonia.WithShape(1, 2, 1, 3), gorgonia.WithName("x"),
		gorgonia.WithValue(tensor.New(tensor.WithShape(1, 2, 1, 3), tensor.WithBacking([]float64{-1, 0, 2, -3, 4, -0.5}))))
	a := gorgonia.NewVector(g, tensor.Float64, gorgonia.WithShape(2), gorgonia.WithName("a"),
		gorgonia.WithValue(tensor.New(tensor.WithBacking([]float64{0.25, -2}))))
	y, err := ops.PReLU(x, a)
	if err != nil {
		t.Fatal(err)
	}
	if !ops.IsPReLU(y) || ops.IsPReLU(x) {
		t.Error("IsPReLU")
	}
	vm := gorgonia.NewTapeMachine(g)
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	if got, want := ntValue(y.Value()), []float64{-0.25, 0, 2, 6, 4, 1}; !ntEqual(got, want) {
		t.Errorf("y = %v, want %v", got, want)
	}
}

func TestPReLUErrors(t *testing.T) {
	g := gorgonia.NewGraph()
	x3 := gorgonia.NewTensor(g, tensor.Float64, 3, gorgonia.WithShape(2, 3, 4), gorgonia.WithName("x3"))
	x := gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(2, 3), gorgonia.WithName("x"))
	a2 := gorgonia.NewVector(g, tensor.Float64, gorgonia.WithShape(2), gorgonia.WithName("a2"))
	a3 := gorgonia.NewVector(g, tensor.Float64, gorgonia.WithShape(3), gorgonia.WithName("a3"))
	if _, err := ops.PReLU(x3, a3); err == nil || !strings.Contains(err.Error(), "want (N,C)") {
		t.Errorf("rank 3: %v", err)
	}
	if _, err := ops.PReLU(x, a2); err == nil || !strings.Contains(err.Error(), "alpha has shape") {
		t.Errorf("alpha (2) for 3 channels: %v", err)
	}
}
