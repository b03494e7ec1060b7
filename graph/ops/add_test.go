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

func TestAddGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, shape := range [][]int{{5}, {3, 4}, {2, 3, 2, 2}, {2, 1, 3}} {
		oc := opcheck.Case{
			Name:   fmt.Sprintf("Add%v", shape),
			Inputs: []*tensor.Dense{opcheck.Random(rng, shape...), opcheck.Random(rng, shape...)},
			Build: func(_ *gorgonia.ExprGraph, xs []*gorgonia.Node) (*gorgonia.Node, error) {
				return ops.Add(xs[0], xs[1])
			},
		}
		opcheck.Gradients(t, oc)
		opcheck.Float32Agrees(t, oc, 1e-5)
	}
	// a residual block in miniature: y = x + relu(x) sums two gradients into x,
	// and Add(x, x) passes the gradient twice
	for _, tc := range []struct {
		name  string
		build func(x *gorgonia.Node) (*gorgonia.Node, error)
	}{
		{"residual", func(x *gorgonia.Node) (*gorgonia.Node, error) {
			r, err := ops.ReLU(x)
			if err != nil {
				return nil, err
			}
			return ops.Add(x, r)
		}},
		{"self", func(x *gorgonia.Node) (*gorgonia.Node, error) { return ops.Add(x, x) }},
	} {
		oc := opcheck.Case{
			Name:   "Add/" + tc.name,
			Inputs: []*tensor.Dense{opcheck.Random(rng, 2, 3, 2, 2)},
			Build: func(_ *gorgonia.ExprGraph, xs []*gorgonia.Node) (*gorgonia.Node, error) {
				return tc.build(xs[0])
			},
		}
		opcheck.Gradients(t, oc)
		opcheck.Float32Agrees(t, oc, 1e-5)
	}
}

func TestAddErrors(t *testing.T) {
	g := gorgonia.NewGraph()
	a := gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(2, 3), gorgonia.WithName("a"))
	b := gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(3, 2), gorgonia.WithName("b"))
	if _, err := ops.Add(a, b); err == nil || !strings.Contains(err.Error(), "differ") {
		t.Errorf("mismatched shapes: %v", err)
	}
	y, err := ops.Add(a, a)
	if err != nil || !ops.IsAdd(y) || ops.IsAdd(a) {
		t.Errorf("IsAdd: %v", err)
	}
}
