package ops

import (
	"github.com/eraserelu/eraserelu/graph/ops/cpu"
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestConvPoolLinearFlattenNoAllocs runs every op of conv.go, pool.go, linear.go and
// flatten.go twice and checks that, with the op's buffers and the shared
// workspace warm, a run allocates nothing, on the parallel path and for both
// dtypes. (Under the purego tag gonum's GEMM allocates by itself; there only
// ops that do not call it are held to zero.)
func TestConvPoolLinearFlattenNoAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		rnd := func(shape ...int) *tensor.Dense {
			n := tensor.Shape(shape).TotalSize()
			v := make([]float64, n)
			for i := range v {
				v[i] = 2*rng.Float64() - 1
			}
			return convTestDtype(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(v)), dt)
		}
		p1 := ConvParams{PadH: 1, PadW: 1}.normalized()
		p2 := ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, Groups: 2}.normalized()
		x, w, b := rnd(8, 16, 16, 16), rnd(16, 16, 3, 3), rnd(16)
		w2, dy2 := rnd(32, 8, 3, 3), rnd(8, 32, 8, 8)
		dy := rnd(8, 16, 16, 16)
		xl, wl, bl, dyl := rnd(64, 200), rnd(100, 200), rnd(100), rnd(64, 100)
		pdy := rnd(8, 16, 8, 8)
		cases := []struct {
			name string
			op   gorgonia.Op
			in   []gorgonia.Value
		}{
			{"Conv2D", &Conv2DOp{p: p1, withBias: withBias{bias: true, rank: 4}, id: nextID()}, []gorgonia.Value{x, w, b}},
			{"Conv2D strided grouped", &Conv2DOp{p: p2, withBias: withBias{rank: 4}, id: nextID()}, []gorgonia.Value{x, w2}},
			{"Conv2DDataGrad", &conv2DDataGradOp{p: p1, xshape: x.Shape(), id: nextID()}, []gorgonia.Value{w, dy}},
			{"Conv2DDataGrad strided", &conv2DDataGradOp{p: p2, xshape: x.Shape(), id: nextID()}, []gorgonia.Value{w2, dy2}},
			{"Conv2DFilterGrad", &conv2DFilterGradOp{p: p1, wshape: w.Shape(), id: nextID()}, []gorgonia.Value{x, dy}},
			{"Conv2DFilterGrad strided", &conv2DFilterGradOp{p: p2, wshape: w2.Shape(), id: nextID()}, []gorgonia.Value{x, dy2}},
			{"Conv2DBiasGrad", &conv2DBiasGradOp{id: nextID()}, []gorgonia.Value{dy}},
			{"MaxPool2D", &MaxPool2DOp{poolOp: poolOp{kernel: 3, stride: 2, pad: 1, id: nextID()}}, []gorgonia.Value{x}},
			{"MaxPool2DGrad", &maxPoolGradOp{poolOp: poolOp{kernel: 3, stride: 2, pad: 1, id: nextID()}}, []gorgonia.Value{x, pdy}},
			{"AvgPool2D", &AvgPool2DOp{poolOp: poolOp{kernel: 2, stride: 2, id: nextID()}}, []gorgonia.Value{x}},
			{"AvgPool2DGrad", &avgPoolGradOp{poolOp: poolOp{kernel: 2, stride: 2, id: nextID()}, xshape: x.Shape()}, []gorgonia.Value{pdy}},
			{"GlobalAvgPool", &GlobalAvgPoolOp{id: nextID()}, []gorgonia.Value{x}},
			{"GlobalAvgPoolGrad", &globalAvgPoolGradOp{h: 16, w: 16, id: nextID()}, []gorgonia.Value{rnd(8, 16)}},
			{"Linear", &LinearOp{withBias: withBias{bias: true, rank: 2}, id: nextID()}, []gorgonia.Value{xl, wl, bl}},
			{"LinearDataGrad", &linearGradOp{kind: linearDataGrad, id: nextID()}, []gorgonia.Value{wl, dyl}},
			{"LinearWeightGrad", &linearGradOp{kind: linearWeightGrad, id: nextID()}, []gorgonia.Value{xl, dyl}},
			{"LinearBiasGrad", &linearGradOp{kind: linearBiasGrad, id: nextID()}, []gorgonia.Value{dyl}},
			{"Flatten", &FlattenOp{rank: 4, id: nextID()}, []gorgonia.Value{x}},
			{"FlattenGrad", &flattenGradOp{xshape: x.Shape(), id: nextID()}, []gorgonia.Value{rnd(8, 16*16*16)}},
		}
		for _, c := range cases {
			if _, err := c.op.Do(c.in...); err != nil {
				t.Fatalf("%s %v: %v", c.name, dt, err)
			}
			allocs := testing.AllocsPerRun(5, func() {
				if _, err := c.op.Do(c.in...); err != nil {
					t.Fatalf("%s %v: %v", c.name, dt, err)
				}
			})
			if allocs != 0 && (cpu.BLASAllocFree || !convUsesGEMM(c.op)) {
				t.Errorf("%s %v: %v allocations per warm run, want 0", c.name, dt, allocs)
			}
		}
	}
}

func convUsesGEMM(op gorgonia.Op) bool {
	switch op.(type) {
	case *Conv2DOp, *conv2DDataGradOp, *conv2DFilterGradOp, *LinearOp:
		return true
	case *linearGradOp:
		return op.(*linearGradOp).kind != linearBiasGrad
	}
	return false
}
