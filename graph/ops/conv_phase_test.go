package ops

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/eraserelu/eraserelu/graph/ops/opcheck"
	"gorgonia.org/tensor"
)

// convNaiveDataGrad is the definition of a convolution's input gradient:
// dx[n][c][ih][iw] sums w[f][c][kh][kw] * dy[n][f][oh][ow] over the
// (f, kh, kw, oh, ow) with ih = oh*SH - PH + kh, iw = ow*SW - PW + kw.
func convNaiveDataGrad(w, dy []float64, cc convCase) []float64 {
	dx := make([]float64, cc.n*cc.c*cc.h*cc.w)
	convNaiveTaps(cc, func(xi, wi, yi int) { dx[xi] += dy[yi] * w[wi] })
	return dx
}

// convPhaseCases are strided geometries the phase kernels take: odd and
// even sizes, 3x3 pad 1, 1x1 pad 0 (phases without taps), 5x5 pad 2, 7x7
// pad 3, 2x2 and 4x4 kernels, pad larger than needed, strides 3 and
// (2,1)/(1,2), channel counts off the 8-channel blocks, groups, several
// images per worker, and ResNet's two downsampling layers.
var convPhaseCases = []convCase{
	{n: 2, c: 16, h: 32, w: 32, f: 32, kh: 3, kw: 3, p: ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}},
	{n: 3, c: 32, h: 16, w: 16, f: 64, kh: 3, kw: 3, p: ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}},
	{n: 2, c: 5, h: 7, w: 9, f: 6, kh: 3, kw: 3, p: ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}},
	{n: 3, c: 9, h: 13, w: 11, f: 7, kh: 3, kw: 3, p: ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}},
	{n: 2, c: 6, h: 8, w: 7, f: 10, kh: 1, kw: 1, p: ConvParams{StrideH: 2, StrideW: 2}},
	{n: 2, c: 4, h: 9, w: 9, f: 3, kh: 1, kw: 1, p: ConvParams{StrideH: 2, StrideW: 2, Groups: 1}},
	{n: 2, c: 4, h: 11, w: 12, f: 9, kh: 5, kw: 5, p: ConvParams{StrideH: 2, StrideW: 2, PadH: 2, PadW: 2}},
	{n: 2, c: 3, h: 15, w: 14, f: 8, kh: 7, kw: 7, p: ConvParams{StrideH: 2, StrideW: 2, PadH: 3, PadW: 3}},
	{n: 2, c: 5, h: 9, w: 10, f: 4, kh: 2, kw: 2, p: ConvParams{StrideH: 2, StrideW: 2}},
	{n: 2, c: 4, h: 9, w: 10, f: 5, kh: 4, kw: 4, p: ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}},
	{n: 2, c: 3, h: 8, w: 9, f: 4, kh: 3, kw: 3, p: ConvParams{StrideH: 2, StrideW: 2, PadH: 2, PadW: 2}},
	{n: 2, c: 5, h: 10, w: 11, f: 6, kh: 3, kw: 3, p: ConvParams{StrideH: 3, StrideW: 3, PadH: 1, PadW: 1}},
	{n: 2, c: 4, h: 9, w: 12, f: 5, kh: 3, kw: 3, p: ConvParams{StrideH: 2, StrideW: 1, PadH: 1, PadW: 1}},
	{n: 2, c: 4, h: 12, w: 9, f: 5, kh: 3, kw: 5, p: ConvParams{StrideH: 1, StrideW: 2, PadH: 1, PadW: 2}},
	{n: 2, c: 8, h: 10, w: 10, f: 12, kh: 3, kw: 3, p: ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, Groups: 2}},
	{n: 3, c: 12, h: 7, w: 8, f: 6, kh: 3, kw: 3, p: ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, Groups: 3}},
	{n: 9, c: 17, h: 6, w: 6, f: 19, kh: 3, kw: 3, p: ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}},
}

// TestConvPhaseDataGrad checks the phase-decomposed input gradient
// (float32, direct kernels) against the definition in float64, the float64
// input gradient of GEMM + col2im (which TestConv2DGradients checks
// against central differences) and the float32 one, to float32 rounding
// (convDirectAgree: 1e-5 of the largest value), on one worker and on all.
// Geometries it does not take (stride 1, a phase wider than dy) must fall
// back.
func TestConvPhaseDataGrad(t *testing.T) {
	if !convDirectCPU {
		t.Skip("no direct kernels on this CPU or build")
	}
	t.Parallel()
	par := DefaultKernels()
	par.MinParallelWork = 0
	col2im := par
	col2im.DataGradViaForward = false
	rng := rand.New(rand.NewPCG(11, 12))
	for _, cc := range convPhaseCases {
		p := cc.p.normalized()
		x := opcheck.Random(rng, cc.n, cc.c, cc.h, cc.w)
		w := opcheck.Random(rng, cc.f, cc.c/p.Groups, cc.kh, cc.kw)
		g, err := convGeometry(x.Shape(), w.Shape(), p)
		if err != nil {
			t.Fatal(err)
		}
		dy := opcheck.Random(rng, cc.n, cc.f, g.OH, g.OW)
		grad := func(k Kernels, dt tensor.Dtype, wantPhase bool) []float64 {
			op := &conv2DDataGradOp{p: p, xshape: x.Shape().Clone(), id: nextID(), withEnv: withEnv{testEnv(t, k)}}
			var out []float64
			for run := 0; run < 2; run++ { // the second run reuses the plan and buffers
				v, err := op.Do(convTestDtype(w, dt), convTestDtype(dy, dt))
				if err != nil {
					t.Fatalf("%v: %v", cc, err)
				}
				out = convTestF64(v.(*tensor.Dense))
			}
			if op.phase.ok != wantPhase {
				t.Fatalf("%v %v: phase kernels %v, want %v", cc, dt, op.phase.ok, wantPhase)
			}
			return out
		}
		want := convNaiveDataGrad(w.Data().([]float64), dy.Data().([]float64), cc)
		convDirectAgree(t, fmt.Sprintf("%v float64 col2im vs definition", cc), grad(DefaultKernels(), tensor.Float64, false), want)
		for _, k := range []struct {
			name string
			k    Kernels
		}{{"serial", DefaultKernels()}, {"parallel", par}} {
			got := grad(k.k, tensor.Float32, true)
			convDirectAgree(t, fmt.Sprintf("%v %s phases vs definition", cc, k.name), got, want)
			convDirectAgree(t, fmt.Sprintf("%v %s phases vs float64 col2im", cc, k.name), got, grad(col2im, tensor.Float64, false))
			convDirectAgree(t, fmt.Sprintf("%v %s phases vs float32 col2im", cc, k.name), got, grad(col2im, tensor.Float32, false))
		}
	}
	// not taken: valid (unpadded) stride-2 convolutions, whose phases are
	// wider than dy's rows, and a stride-1 one
	for _, cc := range []convCase{
		{n: 1, c: 4, h: 9, w: 9, f: 4, kh: 3, kw: 3, p: ConvParams{StrideH: 2, StrideW: 2}},
		{n: 1, c: 4, h: 9, w: 9, f: 4, kh: 2, kw: 2, p: ConvParams{StrideH: 2, StrideW: 2}},
		{n: 1, c: 4, h: 9, w: 9, f: 4, kh: 3, kw: 3, p: ConvParams{PadH: 1, PadW: 1}},
	} {
		p := cc.p.normalized()
		g, err := convGeometry(tensor.Shape{cc.n, cc.c, cc.h, cc.w}, tensor.Shape{cc.f, cc.c, cc.kh, cc.kw}, p)
		if err != nil {
			t.Fatal(err)
		}
		k := DefaultKernels()
		var d convPhaseGrad
		if d.prepare(&g, &k) {
			t.Errorf("%v: phase kernels taken, want the fallback", cc)
		}
	}
}
