package ops

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/eraserelu/eraserelu/graph/ops/opcheck"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestFlatten(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, shape := range [][]int{{3, 4}, {2, 3, 4}, {3, 2, 2, 3}, {1, 2, 1, 2, 3}} {
		c := opcheck.Case{
			Name:   fmt.Sprintf("Flatten %v", shape),
			Inputs: []*tensor.Dense{opcheck.Random(rng, shape...)},
			Build: func(_ *gorgonia.ExprGraph, xs []*gorgonia.Node) (*gorgonia.Node, error) {
				y, err := Flatten(xs[0])
				if err == nil && (y.Dims() != 2 || y.Shape()[0] != shape[0] || y.Shape().TotalSize() != xs[0].Shape().TotalSize()) {
					err = fmt.Errorf("Flatten of %v has shape %v", shape, y.Shape())
				}
				return y, err
			},
		}
		opcheck.Gradients(t, c)
		opcheck.Float32Agrees(t, c, 1e-5)
	}
	g := gorgonia.NewGraph()
	x := gorgonia.NewVector(g, tensor.Float64, gorgonia.WithShape(5), gorgonia.WithName("x"))
	if _, err := Flatten(x); err == nil {
		t.Error("Flatten of a vector: no error")
	}
}

// TestFlattenThenLinear chains the ops as a classifier head does.
func TestFlattenThenLinear(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	c := opcheck.Case{
		Name:   "GlobalAvgPool-Flatten-Linear",
		Inputs: []*tensor.Dense{opcheck.Random(rng, 2, 3, 4, 4), opcheck.Random(rng, 5, 3*2*2), opcheck.Random(rng, 5)},
		Build: func(_ *gorgonia.ExprGraph, xs []*gorgonia.Node) (*gorgonia.Node, error) {
			p, err := AvgPool2D(xs[0], 2, 2, 0)
			if err != nil {
				return nil, err
			}
			f, err := Flatten(p)
			if err != nil {
				return nil, err
			}
			return Linear(f, xs[1], xs[2])
		},
	}
	opcheck.Gradients(t, c)
	opcheck.Float32Agrees(t, c, 1e-4) // Linear's sums; see TestLinearGradients
}

// TestConvPoolLinearNetwork checks the gradients through a small CNN built from these
// ops and Gorgonia's own add: a convolution whose output feeds both a second,
// grouped convolution and a skip connection (so its gradient is a sum), then
// ReLU, max pooling, global average pooling, flattening and a linear layer.
func TestConvPoolLinearNetwork(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	c := opcheck.Case{
		Name: "small network",
		Inputs: []*tensor.Dense{
			opcheck.Random(rng, 2, 3, 6, 6), // x
			opcheck.Random(rng, 4, 3, 3, 3), // conv1
			opcheck.Random(rng, 4),          // conv1 bias
			opcheck.Random(rng, 4, 2, 3, 3), // conv2, 2 groups
			opcheck.Random(rng, 5, 4),       // linear
		},
		Eps: 1e-4,
		Build: func(_ *gorgonia.ExprGraph, xs []*gorgonia.Node) (*gorgonia.Node, error) {
			h, err := Conv2D(xs[0], xs[1], xs[2], ConvParams{PadH: 1, PadW: 1})
			if err != nil {
				return nil, err
			}
			h2, err := Conv2D(h, xs[3], nil, ConvParams{PadH: 1, PadW: 1, Groups: 2})
			if err != nil {
				return nil, err
			}
			if h, err = gorgonia.Add(h, h2); err != nil {
				return nil, err
			}
			if h, err = ReLU(h); err != nil {
				return nil, err
			}
			if h, err = MaxPool2D(h, 2, 2, 0); err != nil {
				return nil, err
			}
			if h, err = GlobalAvgPool(h); err != nil {
				return nil, err
			}
			if h, err = Flatten(h); err != nil {
				return nil, err
			}
			return Linear(h, xs[4], nil)
		},
	}
	opcheck.Gradients(t, c)
	opcheck.Float32Agrees(t, c, 1e-4)
}
