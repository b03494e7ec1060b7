package ops_test

import (
	"math/rand/v2"
	"testing"

	"github.com/eraserelu/eraserelu/graph/ops"
	"github.com/eraserelu/eraserelu/graph/ops/opcheck"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestReLU(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, shape := range [][]int{{7}, {3, 5}, {2, 3, 4, 5}} {
		c := opcheck.Case{
			Name:   "ReLU",
			Inputs: []*tensor.Dense{opcheck.Random(rng, shape...)},
			Build: func(_ *gorgonia.ExprGraph, xs []*gorgonia.Node) (*gorgonia.Node, error) {
				return ops.ReLU(xs[0])
			},
		}
		opcheck.Gradients(t, c)
		opcheck.Float32Agrees(t, c, 1e-5)
	}
}
