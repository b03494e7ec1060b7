package ops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/graph/ops/opcheck"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

type poolCase struct {
	n, c, h, w, k, s, p int
}

func (pc poolCase) String() string {
	return fmt.Sprintf("x%dx%dx%dx%d_k%d_s%d_p%d", pc.n, pc.c, pc.h, pc.w, pc.k, pc.s, pc.p)
}

// poolCases: kernels 1/2/3/5, strides 1/2/3, paddings 0/1/2, non-square
// inputs, batches 1 and 3.
var poolCases = []poolCase{
	{1, 2, 4, 4, 2, 2, 0},
	{3, 2, 5, 6, 3, 2, 1},
	{1, 3, 6, 5, 3, 1, 1},
	{3, 1, 7, 6, 5, 2, 2},
	{1, 2, 3, 5, 1, 2, 0},
	{3, 2, 7, 5, 3, 3, 0},
}

// poolWithKnobs runs fn, in parallel, with the default kernels (serial on
// these small shapes) and with every kernel split across workers.
func poolWithKnobs(t *testing.T, fn func(t *testing.T, e *Env)) {
	par := DefaultKernels()
	par.MinParallelWork = 0
	for _, c := range []struct {
		name string
		k    Kernels
	}{{"serial", DefaultKernels()}, {"parallel", par}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fn(t, testEnv(t, c.k))
		})
	}
}

func TestPoolGradients(t *testing.T) {
	poolWithKnobs(t, func(t *testing.T, e *Env) {
		rng := rand.New(rand.NewPCG(7, 8))
		for _, pc := range poolCases {
			for _, kind := range []string{"MaxPool2D", "AvgPool2D"} {
				c := opcheck.Case{
					Name:   kind + " " + pc.String(),
					Inputs: []*tensor.Dense{opcheck.Random(rng, pc.n, pc.c, pc.h, pc.w)},
					Build: func(_ *gorgonia.ExprGraph, xs []*gorgonia.Node) (*gorgonia.Node, error) {
						if kind == "MaxPool2D" {
							return usingEnv(e)(MaxPool2D(xs[0], pc.k, pc.s, pc.p))
						}
						return usingEnv(e)(AvgPool2D(xs[0], pc.k, pc.s, pc.p))
					},
				}
				opcheck.Gradients(t, c)
				opcheck.Float32Agrees(t, c, 1e-5)
			}
		}
		for _, shape := range [][]int{{1, 3, 4, 5}, {3, 2, 1, 1}, {2, 4, 3, 3}} {
			c := opcheck.Case{
				Name:   fmt.Sprintf("GlobalAvgPool %v", shape),
				Inputs: []*tensor.Dense{opcheck.Random(rng, shape...)},
				Build: func(_ *gorgonia.ExprGraph, xs []*gorgonia.Node) (*gorgonia.Node, error) {
					return GlobalAvgPool(xs[0])
				},
			}
			opcheck.Gradients(t, c)
			opcheck.Float32Agrees(t, c, 1e-5)
		}
	})
}

func convTestRun(t *testing.T, op gorgonia.Op, ins ...*tensor.Dense) []float64 {
	t.Helper()
	vs := make([]gorgonia.Value, len(ins))
	for i, d := range ins {
		vs[i] = d
	}
	out, err := op.Do(vs...)
	if err != nil {
		t.Fatal(err)
	}
	return convTestF64(out.(*tensor.Dense))
}

func convTestClose(got, want []float64, tol float64) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > tol {
			return false
		}
	}
	return true
}

// TestAvgPoolHandValues checks the kernel-area divisor, also where windows
// overlap the padding (count_include_pad=True).
func TestAvgPoolHandValues(t *testing.T) {
	x := tensor.New(tensor.WithShape(1, 1, 3, 3), tensor.WithBacking([]float64{
		1, 2, 3,
		4, 5, 6,
		7, 8, 9,
	}))
	for _, tc := range []struct {
		k, s, p int
		want    []float64
	}{
		// 2x2 windows, stride 1, no padding: plain means.
		{2, 1, 0, []float64{3, 4, 6, 7}},
		// 3x3, stride 2, padding 1: corner windows hold 4 real values, all
		// divided by 9: (1+2+4+5)/9, (2+3+5+6)/9, (4+5+7+8)/9, (5+6+8+9)/9.
		{3, 2, 1, []float64{12.0 / 9, 16.0 / 9, 24.0 / 9, 28.0 / 9}},
		// 2x2, stride 2, padding 1: windows of 1, 2, 2, 4 values over 4.
		{2, 2, 1, []float64{1.0 / 4, 5.0 / 4, 11.0 / 4, 28.0 / 4}},
	} {
		for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
			op := &AvgPool2DOp{poolOp: poolOp{kernel: tc.k, stride: tc.s, pad: tc.p, id: nextID()}}
			got := convTestRun(t, op, convTestDtype(x, dt))
			if !convTestClose(got, tc.want, 1e-6) {
				t.Errorf("AvgPool2D k%d s%d p%d %v: got %v, want %v", tc.k, tc.s, tc.p, dt, got, tc.want)
			}
		}
	}
	// The gradient spreads dy/(k*k) over each window: with k=3, s=2, p=1 and
	// dy = 1, the centre (in all four windows) gets 4/9, edges 2/9, corners 1/9.
	gop := &avgPoolGradOp{poolOp: poolOp{kernel: 3, stride: 2, pad: 1, id: nextID()}, xshape: tensor.Shape{1, 1, 3, 3}}
	dy := tensor.New(tensor.WithShape(1, 1, 2, 2), tensor.WithBacking([]float64{1, 1, 1, 1}))
	want := []float64{1. / 9, 2. / 9, 1. / 9, 2. / 9, 4. / 9, 2. / 9, 1. / 9, 2. / 9, 1. / 9}
	if got := convTestRun(t, gop, dy); !convTestClose(got, want, 1e-12) {
		t.Errorf("AvgPool2D gradient: got %v, want %v", got, want)
	}
}

// TestMaxPoolPadding checks that padding never wins the max: all-negative
// inputs with windows over the border.
func TestMaxPoolPadding(t *testing.T) {
	x := tensor.New(tensor.WithShape(1, 1, 2, 3), tensor.WithBacking([]float64{
		-6, -5, -4,
		-3, -2, -1,
	}))
	op := &MaxPool2DOp{poolOp: poolOp{kernel: 2, stride: 2, pad: 1, id: nextID()}}
	// windows: {-6}, {-5,-4}, {-3}, {-2,-1}
	want := []float64{-6, -4, -3, -1}
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		if got := convTestRun(t, op, convTestDtype(x, dt)); !convTestClose(got, want, 0) {
			t.Errorf("MaxPool2D %v: got %v, want %v", dt, got, want)
		}
	}
	gop := &maxPoolGradOp{poolOp: poolOp{kernel: 2, stride: 2, pad: 1, id: nextID()}}
	dy := tensor.New(tensor.WithShape(1, 1, 2, 2), tensor.WithBacking([]float64{1, 2, 3, 4}))
	if got := convTestRun(t, gop, x, dy); !convTestClose(got, []float64{1, 0, 2, 3, 0, 4}, 0) {
		t.Errorf("MaxPool2D gradient: got %v", got)
	}
}

func TestPoolShapeErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		x       []int
		k, s, p int
		errHas  string
	}{
		{"rank", []int{2, 8, 8}, 2, 2, 0, "input must be (N,C,H,W)"},
		{"kernel too large", []int{1, 1, 3, 3}, 5, 1, 0, "larger than the padded input"},
		{"padding over half the kernel", []int{1, 1, 8, 8}, 3, 1, 2, "padding 2 must be between 0 and half the kernel 3"},
		{"zero stride", []int{1, 1, 8, 8}, 3, 0, 1, "must be positive"},
	} {
		g := gorgonia.NewGraph()
		x := gorgonia.NewTensor(g, tensor.Float64, len(tc.x), gorgonia.WithShape(tc.x...), gorgonia.WithName("x"))
		for _, f := range []func(*gorgonia.Node, int, int, int) (*gorgonia.Node, error){MaxPool2D, AvgPool2D} {
			_, err := f(x, tc.k, tc.s, tc.p)
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.errHas)
			}
		}
	}
	g := gorgonia.NewGraph()
	x := gorgonia.NewTensor(g, tensor.Float64, 2, gorgonia.WithShape(2, 3), gorgonia.WithName("x"))
	if _, err := GlobalAvgPool(x); err == nil || !strings.Contains(err.Error(), "(2, 3)") {
		t.Errorf("GlobalAvgPool of a matrix: error %v", err)
	}
}
