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

func TestLayerNormGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, shape := range [][]int{{3, 4}, {1, 6}, {5, 2}, {5, 3}, {4, 9}} {
		d := shape[1]
		oc := opcheck.Case{
			Name:   fmt.Sprintf("LayerNorm%v", shape),
			Inputs: []*tensor.Dense{opcheck.Random(rng, shape...), opcheck.Random(rng, d), opcheck.Random(rng, d)},
			Build: func(_ *gorgonia.ExprGraph, xs []*gorgonia.Node) (*gorgonia.Node, error) {
				return ops.LayerNorm(xs[0], xs[1], xs[2], 1e-5)
			},
		}
		opcheck.Gradients(t, oc)
		if d > 2 {
			// for D = 2, xhat = ±1 and dx is O(eps): its float32 value is
			// dominated by the rounding of the inputs, not by the op
			opcheck.Float32Agrees(t, oc, 1e-5)
		}
	}
}

func TestLayerNormValues(t *testing.T) {
	g := gorgonia.NewGraph()
	xv := []float64{1, 2, 3, 4, -2, 0, 2, 8}
	x := gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(2, 4), gorgonia.WithName("x"),
		gorgonia.WithValue(tensor.New(tensor.WithShape(2, 4), tensor.WithBacking(xv))))
	gm := gorgonia.NewVector(g, tensor.Float64, gorgonia.WithShape(4), gorgonia.WithName("g"),
		gorgonia.WithValue(tensor.New(tensor.WithBacking([]float64{1, 2, 0.5, -1}))))
	bt := gorgonia.NewVector(g, tensor.Float64, gorgonia.WithShape(4), gorgonia.WithName("b"),
		gorgonia.WithValue(tensor.New(tensor.WithBacking([]float64{0, 1, 0, -1}))))
	y, err := ops.LayerNorm(x, gm, bt, 0)
	if err != nil {
		t.Fatal(err)
	}
	if e := y.Op().(*ops.LayerNormOp).Eps(); e != 1e-5 {
		t.Errorf("default eps %v", e)
	}
	vm := gorgonia.NewTapeMachine(g)
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	got := ntValue(y.Value())
	gs, bs := []float64{1, 2, 0.5, -1}, []float64{0, 1, 0, -1}
	for r := 0; r < 2; r++ {
		row := xv[r*4 : r*4+4]
		var m, v float64
		for _, a := range row {
			m += a / 4
		}
		for _, a := range row {
			v += (a - m) * (a - m) / 4
		}
		for j, a := range row {
			want := (a-m)/math.Sqrt(v+1e-5)*gs[j] + bs[j]
			if !ntClose(got[r*4+j], want, 1e-12) {
				t.Errorf("y[%d,%d] = %v, want %v", r, j, got[r*4+j], want)
			}
		}
	}
}

func TestLayerNormErrors(t *testing.T) {
	g := gorgonia.NewGraph()
	x := gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(2, 4), gorgonia.WithName("x"))
	x4 := gorgonia.NewTensor(g, tensor.Float64, 4, gorgonia.WithShape(2, 4, 1, 1), gorgonia.WithName("x4"))
	v4 := gorgonia.NewVector(g, tensor.Float64, gorgonia.WithShape(4), gorgonia.WithName("v4"))
	v3 := gorgonia.NewVector(g, tensor.Float64, gorgonia.WithShape(3), gorgonia.WithName("v3"))
	for _, tc := range []struct {
		name    string
		x, g, b *gorgonia.Node
		eps     float64
		want    string
	}{
		{"rank", x4, v4, v4, 0, "want (N, D)"},
		{"gamma", x, v3, v4, 0, "gamma has shape"},
		{"beta", x, v4, v3, 0, "beta has shape"},
		{"eps", x, v4, v4, -1, "eps"},
	} {
		if _, err := ops.LayerNorm(tc.x, tc.g, tc.b, tc.eps); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
