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

type convCase struct {
	n, c, h, w, f, kh, kw int
	p                     ConvParams
	bias                  bool
}

func (cc convCase) String() string {
	p := cc.p.normalized()
	return fmt.Sprintf("x%dx%dx%dx%d_w%dx%dx%d_s%dx%d_p%dx%d_g%d_bias%t", cc.n, cc.c, cc.h, cc.w, cc.f, cc.kh, cc.kw,
		p.StrideH, p.StrideW, p.PadH, p.PadW, p.Groups, cc.bias)
}

// convCases cover strides 1 and 2, paddings 0/1/2, kernels 1/3/5 (and a
// rectangular one), groups 1/2/4, bias on and off, non-square inputs and
// batches of 1 and 3, small enough for finite differences.
var convCases = []convCase{
	{n: 1, c: 2, h: 5, w: 4, f: 3, kh: 3, kw: 3, p: ConvParams{PadH: 1, PadW: 1}, bias: true},
	{n: 3, c: 4, h: 6, w: 5, f: 4, kh: 3, kw: 3, p: ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, Groups: 2}},
	{n: 2, c: 4, h: 7, w: 6, f: 8, kh: 5, kw: 5, p: ConvParams{PadH: 2, PadW: 2, Groups: 4}, bias: true},
	{n: 3, c: 3, h: 4, w: 5, f: 2, kh: 1, kw: 1, bias: true},
	{n: 1, c: 4, h: 5, w: 5, f: 4, kh: 1, kw: 1, p: ConvParams{StrideH: 2, StrideW: 2, Groups: 2}},
	{n: 3, c: 2, h: 6, w: 7, f: 2, kh: 3, kw: 3, p: ConvParams{StrideH: 2, StrideW: 2, PadH: 2, PadW: 2}, bias: true},
	{n: 1, c: 3, h: 6, w: 4, f: 2, kh: 5, kw: 3, p: ConvParams{StrideH: 1, StrideW: 2}},
	{n: 3, c: 2, h: 4, w: 5, f: 4, kh: 3, kw: 1, p: ConvParams{StrideH: 2, PadH: 1, PadW: 0, Groups: 2}, bias: true},
	{n: 2, c: 2, h: 6, w: 5, f: 3, kh: 3, kw: 1},
	{n: 2, c: 2, h: 6, w: 4, f: 3, kh: 3, kw: 3, p: ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}, bias: true},
	{n: 1, c: 4, h: 4, w: 6, f: 2, kh: 1, kw: 1, p: ConvParams{StrideH: 2, StrideW: 2, Groups: 2}},
	{n: 3, c: 2, h: 8, w: 6, f: 2, kh: 5, kw: 5, p: ConvParams{StrideH: 2, StrideW: 2, PadH: 2, PadW: 2}},
	{n: 1, c: 2, h: 4, w: 3, f: 2, kh: 3, kw: 3, p: ConvParams{PadH: 2, PadW: 1}, bias: true},
}

// convWithKnobs runs fn four times, in parallel: with the default kernels
// (these small shapes run on one worker, one image per GEMM or
// direct-kernel call); with every kernel forced onto all workers with
// several images per GEMM or filter-gradient call; so again with the input
// gradient by col2im instead of as forward convolutions (of the flipped
// filters for stride 1, of each stride phase for strided float32 ones);
// and with the direct kernels off. Every kernel path is tested
// (the direct ones where the CPU has them).
func convWithKnobs(t *testing.T, fn func(t *testing.T, e *Env)) {
	par := DefaultKernels()
	par.MinParallelWork, par.TargetCols, par.DirectWGradImageBytes = 0, 1<<20, 1<<30
	col2im := par
	col2im.DataGradViaForward = false
	gemm := par
	gemm.Direct = false
	for _, c := range []struct {
		name string
		k    Kernels
	}{{"serial", DefaultKernels()}, {"parallel-batched", par}, {"parallel-batched-col2im", col2im}, {"parallel-batched-gemm", gemm}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fn(t, testEnv(t, c.k))
		})
	}
}

func (cc convCase) inputs(rng *rand.Rand) []*tensor.Dense {
	g := cc.p.normalized().Groups
	in := []*tensor.Dense{opcheck.Random(rng, cc.n, cc.c, cc.h, cc.w), opcheck.Random(rng, cc.f, cc.c/g, cc.kh, cc.kw)}
	if cc.bias {
		in = append(in, opcheck.Random(rng, cc.f))
	}
	return in
}

func (cc convCase) opcheck(rng *rand.Rand, e *Env) opcheck.Case {
	return opcheck.Case{
		Name:   "Conv2D " + cc.String(),
		Inputs: cc.inputs(rng),
		// The loss is linear in each input element, so central differences
		// are exact but for rounding, which a larger step makes smaller.
		Eps: 1e-3,
		Build: func(_ *gorgonia.ExprGraph, xs []*gorgonia.Node) (*gorgonia.Node, error) {
			var b *gorgonia.Node
			if cc.bias {
				b = xs[2]
			}
			return usingEnv(e)(Conv2D(xs[0], xs[1], b, cc.p))
		},
	}
}

func TestConv2DGradients(t *testing.T) {
	convWithKnobs(t, func(t *testing.T, e *Env) {
		rng := rand.New(rand.NewPCG(3, 4))
		for _, cc := range convCases {
			t.Run(cc.String(), func(t *testing.T) {
				c := cc.opcheck(rng, e)
				opcheck.Gradients(t, c)
				// float32 sums of up to 100 products of values in [-1,1] carry
				// rounding errors near 1e-6 in absolute terms; outputs and
				// gradients that nearly cancel to zero then differ from
				// float64 by more than 1e-5 relative, so 1e-4 here.
				opcheck.Float32Agrees(t, c, 1e-4)
			})
		}
	})
}

// convNaive is the direct definition of a grouped, strided, padded 2-D
// cross-correlation with optional bias.
func convNaive(x, w, b []float64, cc convCase) []float64 {
	p := cc.p.normalized()
	oh := ConvOutputSize(cc.h, cc.kh, p.StrideH, p.PadH)
	ow := ConvOutputSize(cc.w, cc.kw, p.StrideW, p.PadW)
	y := make([]float64, cc.n*cc.f*oh*ow)
	if b != nil {
		for i := range y {
			y[i] = b[i/(oh*ow)%cc.f]
		}
	}
	convNaiveTaps(cc, func(xi, wi, yi int) { y[yi] += x[xi] * w[wi] })
	return y
}

// convNaiveTaps calls visit with the indices of every input element, filter
// weight and output element one multiply-add of the convolution cc joins,
// taps in the padding left out.
func convNaiveTaps(cc convCase, visit func(xi, wi, yi int)) {
	p := cc.p.normalized()
	oh := ConvOutputSize(cc.h, cc.kh, p.StrideH, p.PadH)
	ow := ConvOutputSize(cc.w, cc.kw, p.StrideW, p.PadW)
	cg, fg := cc.c/p.Groups, cc.f/p.Groups
	for n := 0; n < cc.n; n++ {
		for f := 0; f < cc.f; f++ {
			gi := f / fg
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					for c := 0; c < cg; c++ {
						for kh := 0; kh < cc.kh; kh++ {
							for kw := 0; kw < cc.kw; kw++ {
								ih, iw := i*p.StrideH-p.PadH+kh, j*p.StrideW-p.PadW+kw
								if ih < 0 || ih >= cc.h || iw < 0 || iw >= cc.w {
									continue
								}
								visit(((n*cc.c+gi*cg+c)*cc.h+ih)*cc.w+iw, ((f*cg+c)*cc.kh+kh)*cc.kw+kw, ((n*cc.f+f)*oh+i)*ow+j)
							}
						}
					}
				}
			}
		}
	}
}

func TestConv2DForwardNaive(t *testing.T) {
	more := append([]convCase{
		{n: 5, c: 16, h: 12, w: 10, f: 8, kh: 3, kw: 3, p: ConvParams{PadH: 1, PadW: 1}, bias: true},
		{n: 4, c: 8, h: 9, w: 9, f: 16, kh: 3, kw: 3, p: ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, Groups: 4}},
		{n: 4, c: 8, h: 16, w: 12, f: 16, kh: 3, kw: 3, p: ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}},
		{n: 2, c: 3, h: 14, w: 14, f: 4, kh: 7, kw: 7, p: ConvParams{StrideH: 2, StrideW: 2, PadH: 3, PadW: 3}, bias: true},
		{n: 3, c: 6, h: 5, w: 7, f: 6, kh: 1, kw: 1, p: ConvParams{Groups: 3}, bias: true},
	}, convCases...)
	convWithKnobs(t, func(t *testing.T, e *Env) {
		rng := rand.New(rand.NewPCG(5, 6))
		for _, cc := range more {
			in := cc.inputs(rng)
			var b []float64
			if cc.bias {
				b = in[2].Data().([]float64)
			}
			want := convNaive(in[0].Data().([]float64), in[1].Data().([]float64), b, cc)
			for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
				op := &Conv2DOp{p: cc.p.normalized(), withBias: withBias{bias: cc.bias, rank: 4}, id: nextID(), withEnv: withEnv{e}}
				vs := make([]gorgonia.Value, len(in))
				for i, d := range in {
					vs[i] = convTestDtype(d, dt)
				}
				for run := 0; run < 2; run++ { // the second run reuses the buffers
					out, err := op.Do(vs...)
					if err != nil {
						t.Fatalf("%v: %v", cc, err)
					}
					got := convTestF64(out.(*tensor.Dense))
					tol := 1e-12
					if dt == tensor.Float32 {
						tol = 1e-5
					}
					for i := range want {
						if math.Abs(got[i]-want[i]) > tol*(1+math.Abs(want[i])) {
							t.Fatalf("%v %v run %d: y[%d] = %v, want %v", cc, dt, run, i, got[i], want[i])
						}
					}
				}
			}
		}
	})
}

func convTestDtype(d *tensor.Dense, dt tensor.Dtype) *tensor.Dense {
	src := d.Data().([]float64)
	if dt == tensor.Float64 {
		return tensor.New(tensor.WithShape(d.Shape().Clone()...), tensor.WithBacking(append([]float64(nil), src...)))
	}
	v := make([]float32, len(src))
	for i := range src {
		v[i] = float32(src[i])
	}
	return tensor.New(tensor.WithShape(d.Shape().Clone()...), tensor.WithBacking(v))
}

func convTestF64(d *tensor.Dense) []float64 {
	switch v := d.Data().(type) {
	case []float64:
		return v
	case []float32:
		out := make([]float64, len(v))
		for i := range v {
			out[i] = float64(v[i])
		}
		return out
	}
	panic("convTestF64")
}

func TestConv2DShapeErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		x, w   []int
		b      []int
		p      ConvParams
		errHas string
	}{
		{"groups do not divide channels", []int{1, 6, 8, 8}, []int{4, 2, 3, 3}, nil, ConvParams{Groups: 4}, "divisible by groups 4"},
		{"groups do not divide filters", []int{1, 4, 8, 8}, []int{6, 1, 3, 3}, nil, ConvParams{Groups: 4}, "divisible by groups 4"},
		{"filter channels", []int{1, 4, 8, 8}, []int{4, 3, 3, 3}, nil, ConvParams{}, "want C/groups"},
		{"kernel too large", []int{1, 2, 3, 3}, []int{2, 2, 5, 5}, nil, ConvParams{}, "larger than the padded input"},
		{"input rank", []int{2, 8, 8}, []int{2, 2, 3, 3}, nil, ConvParams{}, "input must be (N,C,H,W)"},
		{"filter rank", []int{1, 2, 8, 8}, []int{2, 18}, nil, ConvParams{}, "filter must be"},
		{"bias shape", []int{1, 2, 8, 8}, []int{3, 2, 3, 3}, []int{2}, ConvParams{}, "bias must have shape (3)"},
		{"negative stride", []int{1, 2, 8, 8}, []int{3, 2, 3, 3}, nil, ConvParams{StrideH: -1}, "strides must be positive"},
		{"negative pad", []int{1, 2, 8, 8}, []int{3, 2, 3, 3}, nil, ConvParams{PadW: -1}, "paddings must not be negative"},
	} {
		g := gorgonia.NewGraph()
		x := gorgonia.NewTensor(g, tensor.Float64, len(tc.x), gorgonia.WithShape(tc.x...), gorgonia.WithName("x"))
		w := gorgonia.NewTensor(g, tensor.Float64, len(tc.w), gorgonia.WithShape(tc.w...), gorgonia.WithName("w"))
		var b *gorgonia.Node
		if tc.b != nil {
			b = gorgonia.NewTensor(g, tensor.Float64, len(tc.b), gorgonia.WithShape(tc.b...), gorgonia.WithName("b"))
		}
		_, err := Conv2D(x, w, b, tc.p)
		if err == nil || !strings.Contains(err.Error(), tc.errHas) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.errHas)
		}
	}
}

func TestConvOutputSize(t *testing.T) {
	for _, tc := range []struct{ in, k, s, p, want int }{
		{32, 3, 1, 1, 32}, {32, 3, 2, 1, 16}, {7, 3, 2, 0, 3}, {8, 1, 2, 0, 4}, {5, 5, 1, 0, 1}, {4, 5, 1, 0, 0}, {224, 7, 2, 3, 112}, {6, 3, 0, 1, 6},
	} {
		if got := ConvOutputSize(tc.in, tc.k, tc.s, tc.p); got != tc.want {
			t.Errorf("ConvOutputSize(%d,%d,%d,%d) = %d, want %d", tc.in, tc.k, tc.s, tc.p, got, tc.want)
		}
	}
}
