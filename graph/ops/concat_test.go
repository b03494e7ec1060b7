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

func TestConcatGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	for _, shapes := range [][][]int{
		{{2, 3}},
		{{2, 3}, {2, 1}},
		{{3, 2, 2, 2}, {3, 1, 2, 2}, {3, 3, 2, 2}},
		{{1, 2, 3, 1}, {1, 2, 3, 1}},
	} {
		var ins []*tensor.Dense
		for _, s := range shapes {
			ins = append(ins, opcheck.Random(rng, s...))
		}
		oc := opcheck.Case{
			Name:   fmt.Sprintf("Concat%v", shapes),
			Inputs: ins,
			Build: func(_ *gorgonia.ExprGraph, xs []*gorgonia.Node) (*gorgonia.Node, error) {
				return ops.Concat(xs...)
			},
		}
		opcheck.Gradients(t, oc)
		opcheck.Float32Agrees(t, oc, 1e-5)
	}
	// the same node twice: its gradient is the sum of both slices
	oc := opcheck.Case{
		Name:   "Concat/self",
		Inputs: []*tensor.Dense{opcheck.Random(rng, 2, 2, 1, 3)},
		Build: func(_ *gorgonia.ExprGraph, xs []*gorgonia.Node) (*gorgonia.Node, error) {
			return ops.Concat(xs[0], xs[0])
		},
	}
	opcheck.Gradients(t, oc)
}

func TestConcatValues(t *testing.T) {
	g := gorgonia.NewGraph()
	a := gorgonia.NewTensor(g, tensor.Float64, 4, gorgonia.WithShape(2, 1, 1, 2), gorgonia.WithName("a"),
		gorgonia.WithValue(tensor.New(tensor.WithShape(2, 1, 1, 2), tensor.WithBacking([]float64{1, 2, 3, 4}))))
	b := gorgonia.NewTensor(g, tensor.Float64, 4, gorgonia.WithShape(2, 2, 1, 2), gorgonia.WithName("b"),
		gorgonia.WithValue(tensor.New(tensor.WithShape(2, 2, 1, 2), tensor.WithBacking([]float64{5, 6, 7, 8, 9, 10, 11, 12}))))
	y, err := ops.Concat(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if !ops.IsConcat(y) || !y.Shape().Eq(tensor.Shape{2, 3, 1, 2}) {
		t.Fatalf("IsConcat %v, shape %v", ops.IsConcat(y), y.Shape())
	}
	vm := gorgonia.NewTapeMachine(g)
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	if got, want := ntValue(y.Value()), []float64{1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12}; !ntEqual(got, want) {
		t.Errorf("y = %v, want %v", got, want)
	}
}

func TestConcatErrors(t *testing.T) {
	g := gorgonia.NewGraph()
	a := gorgonia.NewTensor(g, tensor.Float64, 4, gorgonia.WithShape(2, 1, 3, 3), gorgonia.WithName("a"))
	b := gorgonia.NewTensor(g, tensor.Float64, 4, gorgonia.WithShape(2, 1, 3, 4), gorgonia.WithName("b"))
	m := gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(2, 1), gorgonia.WithName("m"))
	v := gorgonia.NewVector(g, tensor.Float64, gorgonia.WithShape(2), gorgonia.WithName("v"))
	for _, tc := range []struct {
		name string
		xs   []*gorgonia.Node
		want string
	}{
		{"none", nil, "no inputs"},
		{"spatial", []*gorgonia.Node{a, b}, "input 1"},
		{"rank", []*gorgonia.Node{a, m}, "input 1"},
		{"vector", []*gorgonia.Node{v}, "rank 2 or 4"},
	} {
		if _, err := ops.Concat(tc.xs...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
