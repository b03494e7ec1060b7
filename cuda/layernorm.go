package cuda

import (
	"math"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
)

// Layer norm keeps the CPU op's float64 statistics: the forward saves each
// row's mean and inverse standard deviation as doubles (a buffer of 2N
// float64, i.e. 4N float32 words: means, then invstds), and the backward
// kernels compute in double from them, as graph/ops/layernorm.go does.
// eps is passed as the two words of its float64 (kernel floats are float32).
//
// The reference kernels' explicit float64 conversions round every product
// before it is added, so that Go never fuses them into an FMA (ops.cu is
// compiled with -fmad=false): reference and device agree bit for bit.

// LNArgs: Rows rows of D columns, eps as the words (EpsLo, EpsHi) of its float64.
type LNArgs struct{ Rows, D, EpsLo, EpsHi int }

func (a *LNArgs) params() ([]*int, []*float64) { return []*int{&a.Rows, &a.D, &a.EpsLo, &a.EpsHi}, nil }

var (
	// x, gamma, beta -> saved, y: a block per row, a thread per column
	lnFwd = defKernel("ln_fwd", 5, func(a LNArgs) Dim { return perBlock(a.Rows) }, func(_ *Ref, _ Instr, a LNArgs, b [][]float32) {
		n, d := a.Rows, a.D
		eps := math.Float64frombits(unwords(a.EpsLo, a.EpsHi))
		x, gamma, beta, saved, y := b[0], b[1], b[2], b[3], b[4]
		for row := 0; row < n; row++ {
			xs, ys := x[row*d:(row+1)*d], y[row*d:(row+1)*d]
			k := xs[0]
			s1, s2 := treeSum2(d, func(i int) (float64, float64) {
				e := float64(xs[i] - k)
				return e, float64(e * e)
			})
			dm := s1 / float64(d)
			vr := float64(s2/float64(d)) - float64(dm*dm)
			if vr < 0 {
				vr = 0
			}
			mean := float64(k) + dm
			is := 1 / math.Sqrt(vr+eps)
			putF64(saved, row, mean)
			putF64(saved, n+row, is)
			for i, xv := range xs {
				ys[i] = float32(float64(float64(float64(xv)-mean)*is*float64(gamma[i])) + float64(beta[i]))
			}
		}
	})
	// x, gamma, dy, saved -> dx
	lnInputGrad = defKernel("ln_input_grad", 5, func(a RowsArgs) Dim { return perBlock(a.Rows) }, func(_ *Ref, _ Instr, a RowsArgs, b [][]float32) {
		n, d := a.Rows, a.Cols
		x, gamma, dy, saved, dx := b[0], b[1], b[2], b[3], b[4]
		for row := 0; row < n; row++ {
			o := row * d
			mean, is := getF64(saved, row), getF64(saved, n+row)
			s1, s2 := treeSum2(d, func(i int) (float64, float64) {
				g := float64(dy[o+i]) * float64(gamma[i])
				return g, float64(g * (float64(x[o+i]) - mean))
			})
			c0 := -is * s1 / float64(d)
			bb := -is * is * is * s2 / float64(d)
			for i := 0; i < d; i++ {
				t1 := float64(float64(is*float64(dy[o+i])) * float64(gamma[i]))
				t2 := float64(bb * (float64(x[o+i]) - mean))
				dx[o+i] = float32(t1 + t2 + c0)
			}
		}
	})
	// x, dy, saved -> (2, D): a thread per column
	lnParamGrad = defKernel("ln_param_grad", 4, func(a RowsArgs) Dim { return perItem(a.Cols) }, func(_ *Ref, _ Instr, a RowsArgs, b [][]float32) {
		n, d := a.Rows, a.Cols
		x, dy, saved, red := b[0], b[1], b[2], b[3]
		for j := 0; j < d; j++ {
			var sg, sb float64
			for row := 0; row < n; row++ {
				g := float64(dy[row*d+j])
				sg += float64(float64(g*(float64(x[row*d+j])-getF64(saved, row))) * getF64(saved, n+row))
				sb += g
			}
			red[j], red[d+j] = float32(sg), float32(sb)
		}
	})
)

// treeSum2 is the block reduction of ops.cu's row kernels (tree_sum2): thread
// t of the BlockSize threads sums terms t, t+BlockSize, ... in order, then the
// partial sums are added pairwise, (t, t+s) for s = BlockSize/2, ..., 1.
// Mirroring the order makes the reference bit-identical to the device.
func treeSum2(n int, term func(i int) (float64, float64)) (float64, float64) {
	var p, q [BlockSize]float64
	for i := 0; i < n; i++ {
		a, b := term(i)
		p[i%BlockSize] += a
		q[i%BlockSize] += b
	}
	for s := BlockSize / 2; s > 0; s >>= 1 {
		for t := 0; t < s; t++ {
			p[t] += p[t+s]
			q[t] += q[t+s]
		}
	}
	return p[0], q[0]
}

// (x, gamma, beta) -> y, x of shape (N, D).
func lowerLN(l *lowerer, n *gorgonia.Node, d ops.Desc, in []int) (int, error) {
	s := shapeOf(n)
	rows, cols := s[0], s[1]
	saved := l.s.buf(nodeName(n)+"/saved", 4*rows, Activation)
	l.saved[n.Op()] = saved
	lo, hi := words(math.Float64bits(d.Norm.Eps))
	y := l.out(n)
	l.emit(lnFwd.instr(LNArgs{Rows: rows, D: cols, EpsLo: lo, EpsHi: hi}, []int{in[0], in[1], in[2], saved, y}, []int{saved, y}), n)
	return y, nil
}

// (x, gamma, y, dy) -> dx
func lowerLNInputGrad(l *lowerer, n *gorgonia.Node, _ ops.Desc, in []int) (int, error) {
	saved, err := l.savedOf(n)
	if err != nil {
		return 0, err
	}
	s := shapeOf(n)
	dx := l.out(n)
	l.emit(lnInputGrad.instr(RowsArgs{Rows: s[0], Cols: s[1]}, []int{in[0], in[1], in[3], saved, dx}, []int{dx}), n)
	return dx, nil
}

// (x, y, dy) -> (2, D): gradients of gamma and beta.
func lowerLNParamGrad(l *lowerer, n *gorgonia.Node, _ ops.Desc, in []int) (int, error) {
	saved, err := l.savedOf(n)
	if err != nil {
		return 0, err
	}
	s := shapeOf(graph.Children(n)[0])
	red := l.out(n)
	l.emit(lnParamGrad.instr(RowsArgs{Rows: s[0], Cols: s[1]}, []int{in[0], in[2], saved, red}, []int{red}), n)
	return red, nil
}
