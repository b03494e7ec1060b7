package ops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/eraserelu/eraserelu/graph/ops/opcheck"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestConvBatchStats checks the batch statistics a convolution collects
// for the batch norm after it (convstats.go) on every forward kernel path
// (Winograd, direct, direct stride 2, im2col+GEMM with one and several
// images per GEMM, 1x1 without im2col, the Go sums without AVX-512,
// float64, groups, one worker and all): the batch norm uses them (and only
// in training), and its mean and biased variance per channel are within
// the bound of convstats.go of the float64 statistics of the
// convolution's float32 output, R = the channel's largest |x - x[0]|:
//
//	|mean - exact| <= 2^-23 R,  |var - exact| <= 2^-20 R²
//
// (float64: 1e-12 R and 1e-12 R², the float64 sums' own rounding), as its
// own statistics pass is; its output agrees with the unfused batch norm's
// to 1e-5 of the largest value.
func TestConvBatchStats(t *testing.T) {
	t.Parallel()
	par := DefaultKernels()
	par.MinParallelWork, par.TargetCols = 0, 1<<20
	direct := par
	direct.Winograd = false
	gemm := par
	gemm.Direct = false
	gemm1 := DefaultKernels()
	gemm1.Direct = false
	noSIMD := par
	noSIMD.SIMD = false
	envs := []struct {
		name string
		k    Kernels
	}{{"default", DefaultKernels()}, {"parallel", par}, {"direct", direct}, {"gemm-batched", gemm}, {"gemm", gemm1}, {"go-sums", noSIMD}}
	rng := rand.New(rand.NewPCG(13, 14))
	for _, cc := range []convCase{
		{n: 4, c: 16, h: 16, w: 16, f: 16, kh: 3, kw: 3, p: ConvParams{PadH: 1, PadW: 1}},
		{n: 3, c: 8, h: 16, w: 16, f: 12, kh: 3, kw: 3, p: ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}},
		{n: 3, c: 3, h: 9, w: 7, f: 5, kh: 3, kw: 3, p: ConvParams{PadH: 1, PadW: 1}, bias: true},
		{n: 2, c: 6, h: 5, w: 7, f: 4, kh: 1, kw: 1},
		{n: 2, c: 8, h: 8, w: 8, f: 8, kh: 3, kw: 3, p: ConvParams{PadH: 1, PadW: 1, Groups: 2}},
		{n: 5, c: 4, h: 7, w: 5, f: 6, kh: 5, kw: 3, p: ConvParams{StrideH: 2, PadH: 2}},
	} {
		in := cc.inputs(rng)
		// an offset far from zero, so that the shifts matter
		for i, v := range in[0].Data().([]float64) {
			in[0].Data().([]float64)[i] = v + 3
		}
		gamma, beta := opcheck.Random(rng, cc.f), opcheck.Random(rng, cc.f)
		for _, e := range envs {
			for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
				name := fmt.Sprintf("%v %s %v", cc, e.name, dt)
				env := testEnv(t, e.k)
				mode := NewMode()
				conv := &Conv2DOp{p: cc.p.normalized(), withBias: withBias{bias: cc.bias, rank: 4}, id: nextID(), withEnv: withEnv{env}}
				newBN := func() *BatchNormOp {
					return &BatchNormOp{rank: 4, momentum: 0.1, eps: 1e-5, mode: mode, id: nextID(), withEnv: withEnv{env},
						runMean: tensor.New(tensor.Of(dt), tensor.WithShape(cc.f)), runVar: tensor.New(tensor.Of(dt), tensor.WithShape(cc.f))}
				}
				fused, plain := newBN(), newBN()
				s := &convStats{mode: mode}
				conv.stats, fused.convStats = s, s
				args := make([]gorgonia.Value, len(in))
				for i, d := range in {
					args[i] = convTestDtype(d, dt)
				}
				var yv, outPlain, outFused *tensor.Dense
				for run := 0; run < 2; run++ { // the second run reuses the buffers
					out, err := conv.Do(args...)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					yv = out.(*tensor.Dense)
					if !s.fresh {
						t.Fatalf("%s: no statistics collected in training", name)
					}
					o, err := plain.Do(yv, convTestDtype(gamma, dt), convTestDtype(beta, dt))
					if err != nil {
						t.Fatal(err)
					}
					outPlain = o.(*tensor.Dense)
					if o, err = fused.Do(yv, convTestDtype(gamma, dt), convTestDtype(beta, dt)); err != nil {
						t.Fatal(err)
					}
					outFused = o.(*tensor.Dense)
					if s.fresh {
						t.Fatalf("%s: the batch norm did not use the statistics", name)
					}
				}
				y := convTestF64(yv)
				P := len(y) / (cc.n * cc.f)
				for c := 0; c < cc.f; c++ {
					var sum, r float64
					k := y[c*P]
					for i := 0; i < cc.n; i++ {
						for _, v := range y[(i*cc.f+c)*P : (i*cc.f+c+1)*P] {
							sum += v
							r = max(r, math.Abs(v-k))
						}
					}
					mean := sum / float64(cc.n*P)
					var ss float64
					for i := 0; i < cc.n; i++ {
						for _, v := range y[(i*cc.f+c)*P : (i*cc.f+c+1)*P] {
							ss += (v - mean) * (v - mean)
						}
					}
					variance := ss / float64(cc.n*P)
					tm, tv := math.Ldexp(r, -23), math.Ldexp(r*r, -20)
					if dt == tensor.Float64 {
						tm, tv = 1e-12*r, 1e-12*r*r
					}
					for _, op := range []struct {
						name string
						bn   *BatchNormOp
					}{{"fused", fused}, {"unfused", plain}} {
						if dm, dv := math.Abs(op.bn.mean[c]-mean), math.Abs(op.bn.bvar[c]-variance); dm > tm || dv > tv {
							t.Fatalf("%s %s channel %d: mean %v var %v, float64 %v %v (R %v)", name, op.name, c,
								op.bn.mean[c], op.bn.bvar[c], mean, variance, r)
						}
					}
				}
				convDirectAgree(t, name+" output", convTestF64(outFused), convTestF64(outPlain))
				mode.SetTraining(false)
				if _, err := conv.Do(args...); err != nil {
					t.Fatal(err)
				}
				if s.fresh {
					t.Fatalf("%s: statistics collected in inference", name)
				}
			}
		}
	}
}
