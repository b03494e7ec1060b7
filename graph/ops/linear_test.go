package ops

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/graph/ops/opcheck"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestLinearGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, tc := range []struct {
		n, in, out int
		bias       bool
	}{
		{1, 3, 2, true}, {3, 5, 4, false}, {3, 1, 6, true}, {4, 7, 1, true},
	} {
		ins := []*tensor.Dense{opcheck.Random(rng, tc.n, tc.in), opcheck.Random(rng, tc.out, tc.in)}
		if tc.bias {
			ins = append(ins, opcheck.Random(rng, tc.out))
		}
		c := opcheck.Case{
			Name:   fmt.Sprintf("Linear n%d in%d out%d bias%t", tc.n, tc.in, tc.out, tc.bias),
			Inputs: ins,
			Eps:    1e-3, // the loss is linear in each input element
			Build: func(_ *gorgonia.ExprGraph, xs []*gorgonia.Node) (*gorgonia.Node, error) {
				var b *gorgonia.Node
				if tc.bias {
					b = xs[2]
				}
				return Linear(xs[0], xs[1], b)
			},
		}
		opcheck.Gradients(t, c)
		// Dot products that cancel to near zero keep the absolute rounding
		// error of their terms (about 3e-8 for terms near 0.25), which is
		// over 1e-5 relative to a result near 2e-3; hence 1e-4, as for Conv2D.
		opcheck.Float32Agrees(t, c, 1e-4)
	}
}

func TestLinearForward(t *testing.T) {
	x := tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float64{1, 2, 3, 4, 5, 6}))
	w := tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float64{1, 0, -1, 0.5, 0.5, 0.5}))
	b := tensor.New(tensor.WithShape(2), tensor.WithBacking([]float64{10, 20}))
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		op := &LinearOp{withBias: withBias{bias: true, rank: 2}, id: nextID()}
		for run := 0; run < 2; run++ {
			got := convTestRun(t, op, convTestDtype(x, dt), convTestDtype(w, dt), convTestDtype(b, dt))
			if want := []float64{8, 23, 8, 27.5}; !convTestClose(got, want, 1e-6) {
				t.Errorf("Linear %v run %d: got %v, want %v", dt, run, got, want)
			}
		}
	}
}

func TestLinearShapeErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		x, w, b []int
		errHas  string
	}{
		{"inner sizes", []int{4, 3}, []int{2, 5}, nil, "takes 5 inputs"},
		{"input rank", []int{4, 3, 1}, []int{2, 3}, nil, "input must be (N,In)"},
		{"weight rank", []int{4, 3}, []int{6}, nil, "weight must be (Out,In)"},
		{"bias", []int{4, 3}, []int{2, 3}, []int{3}, "bias must have shape (2)"},
	} {
		g := gorgonia.NewGraph()
		x := gorgonia.NewTensor(g, tensor.Float64, len(tc.x), gorgonia.WithShape(tc.x...), gorgonia.WithName("x"))
		w := gorgonia.NewTensor(g, tensor.Float64, len(tc.w), gorgonia.WithShape(tc.w...), gorgonia.WithName("w"))
		var b *gorgonia.Node
		if tc.b != nil {
			b = gorgonia.NewTensor(g, tensor.Float64, len(tc.b), gorgonia.WithShape(tc.b...), gorgonia.WithName("b"))
		}
		if _, err := Linear(x, w, b); err == nil || !strings.Contains(err.Error(), tc.errHas) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.errHas)
		}
	}
}
