package ops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestSIMDKernelsMatchGo compares the AVX-512 element-wise and batch-norm
// kernels with the Go ones on float32 data with tails (sizes not multiples
// of 16), NaNs and signed zeros: ReLU, its gradient and add bit for bit;
// batch norm (statistics, output, parameter and input gradients) to 1e-5
// of the largest value, as their float64 sums are added in another order.
func TestSIMDKernelsMatchGo(t *testing.T) {
	t.Parallel()
	if !convDirectCPU {
		t.Skip("no AVX-512 kernels on this CPU or build")
	}
	rng := rand.New(rand.NewPCG(11, 12))
	rnd := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(3*rng.NormFloat64() + 0.5)
		}
		return v
	}
	for _, n := range []int{1, 15, 16, 17, 100, 1024, 4099} {
		x, dy := rnd(n), rnd(n)
		x[0], x[n/2], x[n-1] = float32(math.NaN()), float32(math.Copysign(0, -1)), 0
		dy[n/3] = float32(math.NaN())
		var outs [2][3][]float32
		for k, on := range []bool{false, true} {
			y, dx, s := make([]float32, n), make([]float32, n), make([]float32, n)
			r := reluKernel[float32]{y: y, x: x, simd: on}
			r.RunRange(0, n)
			g := reluGradKernel[float32]{dx: dx, y: x, dy: dy, simd: on}
			g.RunRange(0, n)
			a := resAddArgs[float32]{y: s, a: x, b: dy, simd: on}
			a.RunRange(0, n)
			outs[k] = [3][]float32{y, dx, s}
		}
		for i, name := range []string{"ReLU", "ReLU gradient", "add"} {
			for j := range outs[0][i] {
				if math.Float32bits(outs[0][i][j]) != math.Float32bits(outs[1][i][j]) {
					t.Fatalf("%s, n=%d: [%d] = %v AVX-512, %v Go", name, n, j, outs[1][i][j], outs[0][i][j])
				}
			}
		}
	}
	for _, sh := range [][3]int{{3, 5, 7}, {2, 4, 16}, {4, 3, 33}, {16, 16, 64}, {5, 2, 1}} {
		n, c, inner := sh[0], sh[1], sh[2]
		x, dy, gamma, beta := rnd(n*c*inner), rnd(n*c*inner), rnd(c), rnd(c)
		for _, stats := range []bool{true, false} {
			var res [2][]float64
			for k, on := range []bool{false, true} {
				mean, invstd, bvar := make([]float64, c), make([]float64, c), make([]float64, c)
				for i := range mean {
					mean[i], invstd[i] = 0.3*float64(i), 1/(1+0.1*float64(i))
				}
				y, red, dx := make([]float32, len(x)), make([]float32, 2*c), make([]float32, len(x))
				f := bnFwdArgs[float32]{x: x, y: y, gamma: gamma, beta: beta, mean: mean, invstd: invstd, bvar: bvar,
					n: n, c: c, inner: inner, eps: 1e-5, stats: stats, simd: on}
				f.RunRange(0, c)
				r := bnRedArgs[float32]{x: x, dy: dy, red: red, mean: mean, invstd: invstd, n: n, c: c, inner: inner, simd: on}
				r.RunRange(0, c)
				d := bnDxArgs[float32]{x: x, gamma: gamma, dy: dy, red: red, dx: dx, mean: mean, invstd: invstd,
					n: n, c: c, inner: inner, batch: stats, simd: on}
				d.RunRange(0, c)
				for _, v := range [][]float32{y, red, dx} {
					for _, e := range v {
						res[k] = append(res[k], float64(e))
					}
				}
				res[k] = append(append(append(res[k], mean...), invstd...), bvar...)
			}
			convDirectAgree(t, "batch norm", res[1], res[0])
		}
	}
}

// TestRectifiedOutputs checks that batch norm and add with the rectifier
// fused into their store (OutputRectifier) give, bit for bit, the ReLU
// kernel applied to their unfused output, batch norm with a residual
// (BatchNormAdd) the add kernel after it, and batch norm's parameter
// gradients with the ReLU's gradient mask fused (ReLUGradMasker) the ReLU
// backward kernel followed by the unfused sums, with the Go and (where the
// CPU has them) the AVX-512 kernels, on data with tails, NaNs and signed
// zeros.
func TestRectifiedOutputs(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(13, 14))
	rnd := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(3*rng.NormFloat64() + 0.5)
		}
		v[0], v[n/2] = float32(math.NaN()), float32(math.Copysign(0, -1))
		return v
	}
	relu := func(x []float32, simd bool) []float32 {
		y := make([]float32, len(x))
		r := reluKernel[float32]{y: y, x: x, simd: simd}
		r.RunRange(0, len(x))
		return y
	}
	same := func(name string, got, want []float32) {
		t.Helper()
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: [%d] = %v fused, %v after a ReLU", name, i, got[i], want[i])
			}
		}
	}
	for _, simd := range []bool{false, true} {
		if simd && !convDirectCPU {
			continue
		}
		for _, n := range []int{1, 17, 100, 4099} {
			a, b := rnd(n), rnd(n)
			var plain, fused [2][]float32
			for k, on := range []bool{false, true} {
				y := make([]float32, n)
				add := resAddArgs[float32]{y: y, a: a, b: b, relu: on, simd: simd}
				add.RunRange(0, n)
				plain[k] = y
				// in place over an input, as the memory plan runs it
				z := append([]float32(nil), b...)
				inPlace := resAddArgs[float32]{y: z, a: a, b: z, relu: on, simd: simd}
				inPlace.RunRange(0, n)
				fused[k] = z
			}
			same(fmt.Sprintf("add, simd %v, n=%d", simd, n), plain[1], relu(plain[0], simd))
			same(fmt.Sprintf("add in place, simd %v, n=%d", simd, n), fused[1], relu(fused[0], simd))
		}
		for _, sh := range [][3]int{{3, 5, 7}, {4, 3, 33}, {16, 16, 64}} {
			n, c, inner := sh[0], sh[1], sh[2]
			x, gamma, beta := rnd(n*c*inner), rnd(c), rnd(c)
			var out [2][]float32
			for k, on := range []bool{false, true} {
				mean, invstd, bvar := make([]float64, c), make([]float64, c), make([]float64, c)
				y := make([]float32, len(x))
				f := bnFwdArgs[float32]{x: x, y: y, gamma: gamma, beta: beta, mean: mean, invstd: invstd, bvar: bvar,
					n: n, c: c, inner: inner, eps: 1e-5, stats: true, relu: on, simd: simd}
				f.RunRange(0, c)
				out[k] = y
			}
			same(fmt.Sprintf("batch norm, simd %v, shape %v", simd, sh), out[1], relu(out[0], simd))

			// with a residual added (BatchNormAdd) against the add kernel
			// after the batch norm, rectified or not
			res := rnd(len(x))
			for _, on := range []bool{false, true} {
				mean, invstd, bvar := make([]float64, c), make([]float64, c), make([]float64, c)
				y := make([]float32, len(x))
				f := bnFwdArgs[float32]{x: x, y: y, gamma: gamma, beta: beta, mean: mean, invstd: invstd, bvar: bvar,
					n: n, c: c, inner: inner, res: res, eps: 1e-5, stats: true, relu: on, simd: simd}
				f.RunRange(0, c)
				want := make([]float32, len(x))
				add := resAddArgs[float32]{y: want, a: res, b: out[0], relu: on, simd: simd}
				add.RunRange(0, len(x))
				same(fmt.Sprintf("batch norm + residual, relu %v, simd %v, shape %v", on, simd, sh), y, want)
			}

			// the parameter gradients with the ReLU's gradient mask applied
			// in place against the ReLU backward kernel followed by the
			// unmasked sums: the same masked gradient and sums
			y, dy := out[1], rnd(len(x))
			mean, invstd := make([]float64, c), make([]float64, c)
			for i := range mean {
				mean[i], invstd[i] = 0.3*float64(i), 1/(1+0.1*float64(i))
			}
			dz := make([]float32, len(dy))
			g := reluGradKernel[float32]{dx: dz, y: y, dy: dy, simd: simd}
			g.RunRange(0, len(dy))
			want := make([]float32, 2*c)
			r := bnRedArgs[float32]{x: x, dy: dz, red: want, mean: mean, invstd: invstd, n: n, c: c, inner: inner, simd: simd}
			r.RunRange(0, c)
			got := make([]float32, 2*c)
			m := bnRedArgs[float32]{x: x, dy: dy, reluOut: y, red: got, mean: mean, invstd: invstd, n: n, c: c, inner: inner, simd: simd}
			m.RunRange(0, c)
			same(fmt.Sprintf("masked gradient, simd %v, shape %v", simd, sh), dy, dz)
			same(fmt.Sprintf("masked parameter gradients, simd %v, shape %v", simd, sh), got, want)
		}
	}
}
