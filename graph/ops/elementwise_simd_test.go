package ops

import (
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
