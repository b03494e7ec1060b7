package ops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/eraserelu/eraserelu/graph/ops/opcheck"
	"gorgonia.org/tensor"
)

// convDirectCases are geometries the direct kernels take (stride-1 "same"
// rows and stride-2 phases), with partial vectors (P not a multiple of 16),
// partial filter blocks, groups, rectangular and 5x5 kernels, more rows
// out than in, and ResNet-20's shapes at a small batch.
var convDirectCases = []convCase{
	{n: 3, c: 16, h: 32, w: 32, f: 16, kh: 3, kw: 3, p: ConvParams{PadH: 1, PadW: 1}},
	{n: 2, c: 16, h: 32, w: 32, f: 32, kh: 3, kw: 3, p: ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}},
	{n: 2, c: 64, h: 8, w: 8, f: 64, kh: 3, kw: 3, p: ConvParams{PadH: 1, PadW: 1}},
	{n: 2, c: 3, h: 32, w: 32, f: 16, kh: 3, kw: 3, p: ConvParams{PadH: 1, PadW: 1}},
	{n: 3, c: 5, h: 13, w: 11, f: 13, kh: 3, kw: 3, p: ConvParams{PadH: 1, PadW: 1}},
	{n: 2, c: 6, h: 10, w: 14, f: 7, kh: 3, kw: 3, p: ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}},
	{n: 2, c: 8, h: 9, w: 7, f: 12, kh: 3, kw: 3, p: ConvParams{PadH: 1, PadW: 1, Groups: 2}},
	{n: 2, c: 4, h: 11, w: 9, f: 9, kh: 5, kw: 5, p: ConvParams{PadH: 2, PadW: 2}},
	{n: 2, c: 4, h: 6, w: 17, f: 3, kh: 3, kw: 1, p: ConvParams{PadH: 1}},
	{n: 2, c: 3, h: 5, w: 6, f: 10, kh: 3, kw: 3, p: ConvParams{PadH: 2, PadW: 1}},
	{n: 1, c: 4, h: 12, w: 8, f: 17, kh: 5, kw: 5, p: ConvParams{StrideH: 2, StrideW: 2, PadH: 2, PadW: 2}},
}

// TestConvDirectMatchesGEMM compares the direct float32 kernels (forward
// with each epilogue, input gradient, filter gradient) with the
// im2col+GEMM path and with float64, to float32 rounding.
func TestConvDirectMatchesGEMM(t *testing.T) {
	if !convDirectCPU {
		t.Skip("no direct kernels on this CPU or build")
	}
	t.Parallel()
	// direct: the default kernels; gemm: im2col+GEMM only
	direct, gemm := DefaultKernels(), DefaultKernels()
	gemm.Direct = false
	envOf := map[bool]*Env{true: testEnv(t, direct), false: testEnv(t, gemm)}
	rng := rand.New(rand.NewPCG(7, 8))
	for _, cc := range convDirectCases {
		p := cc.p.normalized()
		g, err := convGeometry(tensor.Shape{cc.n, cc.c, cc.h, cc.w}, tensor.Shape{cc.f, cc.c / p.Groups, cc.kh, cc.kw}, p)
		if err != nil {
			t.Fatal(err)
		}
		var d convDirect
		if !d.prepare(&g, &direct) {
			t.Fatalf("%v: not a direct geometry", cc)
		}
		x := opcheck.Random(rng, cc.n, cc.c, cc.h, cc.w)
		w := opcheck.Random(rng, cc.f, cc.c/p.Groups, cc.kh, cc.kw)
		yShape := []int{cc.n, cc.f, g.OH, g.OW}
		dy := opcheck.Random(rng, yShape...)
		res := opcheck.Random(rng, yShape...)
		scale, shift := opcheck.Random(rng, cc.f), opcheck.Random(rng, cc.f)
		f32 := func(d *tensor.Dense) []float32 { return convTestDtype(d, tensor.Float32).Data().([]float32) }
		for _, e := range []struct {
			name                    string
			scale, shift, res, relu bool
		}{{"plain", false, false, false, false}, {"bias", false, true, false, false}, {"bias-relu", false, true, false, true},
			{"scale-shift", true, true, false, false}, {"scale-shift-res-relu", true, true, true, true}, {"res", false, false, true, false}} {
			run := func(direct bool) []float64 {
				var ep convEpilogue[float32]
				if e.scale {
					ep.scale = f32(scale)
				}
				if e.shift {
					ep.shift = f32(shift)
				}
				if e.res {
					ep.res = f32(res)
				}
				ep.relu = e.relu
				y := make([]float32, tensor.Shape(yShape).TotalSize())
				var task convFwd[float32]
				var dd convDirect
				var wg sync.WaitGroup
				convForward(&task, &dd, &wg, envOf[direct], g, f32(x), f32(w), ep, y, false)
				return convTestF64(tensor.New(tensor.WithShape(yShape...), tensor.WithBacking(y)))
			}
			convDirectAgree(t, fmt.Sprintf("%v forward %s", cc, e.name), run(true), run(false))
		}
		for _, grad := range []string{"data", "filter"} {
			run := func(direct bool, dt tensor.Dtype) []float64 {
				if grad == "data" {
					op := &conv2DDataGradOp{p: p, xshape: x.Shape().Clone(), id: nextID(), withEnv: withEnv{envOf[direct]}}
					out, err := op.Do(convTestDtype(w, dt), convTestDtype(dy, dt))
					if err != nil {
						t.Fatal(err)
					}
					return convTestF64(out.(*tensor.Dense))
				}
				op := &conv2DFilterGradOp{p: p, wshape: w.Shape().Clone(), id: nextID(), withEnv: withEnv{envOf[direct]}}
				out, err := op.Do(convTestDtype(x, dt), convTestDtype(dy, dt))
				if err != nil {
					t.Fatal(err)
				}
				return convTestF64(out.(*tensor.Dense))
			}
			want := run(false, tensor.Float64)
			convDirectAgree(t, fmt.Sprintf("%v %s gradient vs GEMM", cc, grad), run(true, tensor.Float32), run(false, tensor.Float32))
			convDirectAgree(t, fmt.Sprintf("%v %s gradient vs float64", cc, grad), run(true, tensor.Float32), want)
		}
	}
}

// convDirectAgree checks got against want to float32 rounding: 1e-5
// relative to the largest value (a filter gradient sums thousands of
// products, whose float32 rounding depends on the order of the sums).
func convDirectAgree(t *testing.T, name string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	scale := 1.0
	for _, v := range want {
		scale = max(scale, math.Abs(v))
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-5*scale || math.IsNaN(got[i]) {
			t.Fatalf("%s: [%d] = %v, want %v", name, i, got[i], want[i])
		}
	}
}

// TestConvWinogradMatchesDirect compares the Winograd kernels (forward with
// each epilogue, the stride-1 input gradient, the filter gradient) with the
// direct kernels,
// the im2col+GEMM path and float64, to float32 rounding, for each plane
// width it takes, several images per call, partial filter blocks and groups.
func TestConvWinogradMatchesDirect(t *testing.T) {
	if !convDirectCPU {
		t.Skip("no direct kernels on this CPU or build")
	}
	t.Parallel()
	// kernels is the configuration with the direct and Winograd kernels as
	// asked, small scratch bounds (one image per call) when small.
	kernels := func(direct, wino, small bool) Kernels {
		k := DefaultKernels()
		k.Direct, k.Winograd, k.WinogradMinC = direct, wino, 1
		if small {
			k.WinogradScratchBytes, k.WinogradWGradBytes = 1, 1
		}
		return k
	}
	env := func(direct, wino, small bool) *Env { return testEnv(t, kernels(direct, wino, small)) }
	rng := rand.New(rand.NewPCG(9, 10))
	for _, cc := range []convCase{
		{n: 3, c: 16, h: 32, w: 32, f: 16},
		{n: 2, c: 5, h: 16, w: 32, f: 13},
		{n: 5, c: 32, h: 16, w: 16, f: 32},
		{n: 3, c: 7, h: 12, w: 16, f: 9},
		{n: 7, c: 64, h: 8, w: 8, f: 64},
		{n: 3, c: 6, h: 8, w: 8, f: 20, p: ConvParams{Groups: 2}},
		{n: 2, c: 3, h: 2, w: 32, f: 4},
		{n: 4, c: 64, h: 16, w: 16, f: 64},
		{n: 4, c: 128, h: 8, w: 8, f: 128},
	} {
		cc.kh, cc.kw, cc.p.PadH, cc.p.PadW = 3, 3, 1, 1
		p := cc.p.normalized()
		g, err := convGeometry(tensor.Shape{cc.n, cc.c, cc.h, cc.w}, tensor.Shape{cc.f, cc.c / p.Groups, 3, 3}, p)
		if err != nil {
			t.Fatal(err)
		}
		if !convWinogradFits(&g, 1) {
			t.Fatalf("%v: not a Winograd geometry", cc)
		}
		x := opcheck.Random(rng, cc.n, cc.c, cc.h, cc.w)
		w := opcheck.Random(rng, cc.f, cc.c/p.Groups, 3, 3)
		yShape := []int{cc.n, cc.f, g.OH, g.OW}
		res := opcheck.Random(rng, yShape...)
		scale, shift := opcheck.Random(rng, cc.f), opcheck.Random(rng, cc.f)
		f32 := func(d *tensor.Dense) []float32 { return convTestDtype(d, tensor.Float32).Data().([]float32) }
		for _, small := range []bool{false, true} {
			for _, e := range []struct {
				name                    string
				scale, shift, res, relu bool
			}{{"plain", false, false, false, false}, {"bias-relu", false, true, false, true},
				{"scale-shift-res-relu", true, true, true, true}, {"res", false, false, true, false}} {
				run := func(direct, wino bool) []float64 {
					ep := convEpilogue[float32]{relu: e.relu}
					if e.scale {
						ep.scale = f32(scale)
					}
					if e.shift {
						ep.shift = f32(shift)
					}
					if e.res {
						ep.res = f32(res)
					}
					y := make([]float32, tensor.Shape(yShape).TotalSize())
					var task convFwd[float32]
					var dd convDirect
					var wg sync.WaitGroup
					convForward(&task, &dd, &wg, env(direct, wino, small), g, f32(x), f32(w), ep, y, true)
					if wino != (task.wino != nil || dd.wino.ok) {
						t.Fatalf("%v: Winograd %v, want %v", cc, dd.wino.ok, wino)
					}
					return convTestF64(tensor.New(tensor.WithShape(yShape...), tensor.WithBacking(y)))
				}
				got := run(true, true)
				convDirectAgree(t, fmt.Sprintf("%v Winograd forward %s vs direct", cc, e.name), got, run(true, false))
				convDirectAgree(t, fmt.Sprintf("%v Winograd forward %s vs GEMM", cc, e.name), got, run(false, false))
			}
		}
		dy := opcheck.Random(rng, yShape...)
		grad := func(direct, wino bool, dt tensor.Dtype) []float64 {
			op := &conv2DDataGradOp{p: p, xshape: x.Shape().Clone(), id: nextID(), withEnv: withEnv{env(direct, wino, false)}}
			out, err := op.Do(convTestDtype(w, dt), convTestDtype(dy, dt))
			if err != nil {
				t.Fatal(err)
			}
			return convTestF64(out.(*tensor.Dense))
		}
		got := grad(true, true, tensor.Float32)
		convDirectAgree(t, fmt.Sprintf("%v Winograd input gradient vs direct", cc), got, grad(true, false, tensor.Float32))
		convDirectAgree(t, fmt.Sprintf("%v Winograd input gradient vs float64", cc), got, grad(false, false, tensor.Float64))
		for _, small := range []bool{false, true} {
			// small: one image per filter-gradient call
			wgrad := func(direct, wino bool, dt tensor.Dtype) []float64 {
				op := &conv2DFilterGradOp{p: p, wshape: w.Shape().Clone(), id: nextID(), withEnv: withEnv{env(direct, wino, small)}}
				out, err := op.Do(convTestDtype(x, dt), convTestDtype(dy, dt))
				if err != nil {
					t.Fatal(err)
				}
				if wino != op.direct.wino.ok {
					t.Fatalf("%v: Winograd filter gradient %v, want %v", cc, op.direct.wino.ok, wino)
				}
				return convTestF64(out.(*tensor.Dense))
			}
			got = wgrad(true, true, tensor.Float32)
			convDirectAgree(t, fmt.Sprintf("%v Winograd filter gradient vs direct", cc), got, wgrad(true, false, tensor.Float32))
			convDirectAgree(t, fmt.Sprintf("%v Winograd filter gradient vs float64", cc), got, wgrad(false, false, tensor.Float64))
		}
	}
}
