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

func TestZeroPadShortcutGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	for _, tc := range []struct {
		shape       []int
		out, stride int
	}{
		{[]int{2, 2, 4, 4}, 4, 2},
		{[]int{2, 3, 5, 5}, 6, 2},
		{[]int{1, 3, 3, 4}, 4, 1},
		{[]int{2, 2, 6, 3}, 5, 3},
		{[]int{1, 2, 2, 2}, 2, 1},
	} {
		oc := opcheck.Case{
			Name:   fmt.Sprintf("ZeroPadShortcut%v->%d/%d", tc.shape, tc.out, tc.stride),
			Inputs: []*tensor.Dense{opcheck.Random(rng, tc.shape...)},
			Build: func(_ *gorgonia.ExprGraph, xs []*gorgonia.Node) (*gorgonia.Node, error) {
				return ops.ZeroPadShortcut(xs[0], tc.out, tc.stride)
			},
		}
		opcheck.Gradients(t, oc)
		opcheck.Float32Agrees(t, oc, 1e-5)
	}
}

// TestZeroPadShortcutValues checks against x[:, :, ::s, ::s] padded with
// (out-C)/2 zero channels in front and the rest behind.
func TestZeroPadShortcutValues(t *testing.T) {
	for _, tc := range []struct{ n, c, h, w, out, stride int }{
		{2, 2, 4, 4, 4, 2}, {1, 3, 5, 3, 6, 2}, {2, 2, 3, 3, 5, 1},
	} {
		g := gorgonia.NewGraph()
		xv := opcheck.Random(rand.New(rand.NewPCG(1, 2)), tc.n, tc.c, tc.h, tc.w)
		x := gorgonia.NewTensor(g, tensor.Float64, 4, gorgonia.WithShape(xv.Shape()...), gorgonia.WithName("x"), gorgonia.WithValue(xv))
		y, err := ops.ZeroPadShortcut(x, tc.out, tc.stride)
		if err != nil {
			t.Fatal(err)
		}
		ho, wo := (tc.h+tc.stride-1)/tc.stride, (tc.w+tc.stride-1)/tc.stride
		if !y.Shape().Eq(tensor.Shape{tc.n, tc.out, ho, wo}) {
			t.Fatalf("%+v: shape %v", tc, y.Shape())
		}
		vm := gorgonia.NewTapeMachine(g)
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		got, xs := ntValue(y.Value()), xv.Float64s()
		lo := (tc.out - tc.c) / 2
		if op := y.Op().(*ops.ZeroPadShortcutOp); op.PadBefore() != lo || !ops.IsZeroPadShortcut(y) {
			t.Errorf("PadBefore %d, want %d", op.PadBefore(), lo)
		}
		for n := 0; n < tc.n; n++ {
			for o := 0; o < tc.out; o++ {
				for i := 0; i < ho; i++ {
					for j := 0; j < wo; j++ {
						want := 0.0
						if c := o - lo; c >= 0 && c < tc.c {
							want = xs[((n*tc.c+c)*tc.h+i*tc.stride)*tc.w+j*tc.stride]
						}
						if v := got[((n*tc.out+o)*ho+i)*wo+j]; v != want {
							t.Fatalf("%+v: y[%d,%d,%d,%d] = %v, want %v", tc, n, o, i, j, v, want)
						}
					}
				}
			}
		}
	}
}

func TestZeroPadShortcutErrors(t *testing.T) {
	g := gorgonia.NewGraph()
	x := gorgonia.NewTensor(g, tensor.Float64, 4, gorgonia.WithShape(2, 4, 4, 4), gorgonia.WithName("x"))
	m := gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(2, 4), gorgonia.WithName("m"))
	for _, tc := range []struct {
		name        string
		x           *gorgonia.Node
		out, stride int
		want        string
	}{
		{"rank", m, 8, 2, "want (N,C,H,W)"},
		{"stride", x, 8, 0, "stride"},
		{"channels", x, 3, 2, "output channels"},
	} {
		if _, err := ops.ZeroPadShortcut(tc.x, tc.out, tc.stride); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
