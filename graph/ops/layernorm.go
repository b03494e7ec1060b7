package ops

import (
	"fmt"
	"github.com/eraserelu/eraserelu/graph/ops/cpu"
	"hash"
	"math"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// LayerNormOp is layer normalisation (Ba et al. 2016) of a (N, D) input
// over D, with a per-feature scale gamma and shift beta of shape (D):
// y = (x - mean_row) / sqrt(var_row + eps) * gamma + beta, the variance biased.
// It behaves the same in training and inference.
type LayerNormOp struct {
	noCommon
	eps float64
	id  uint64
	outBuf

	// saved by the last forward for the backward ops (never a node value)
	mean, invstd []float64
	savedN       int
	savedD       int
}

// LayerNorm normalises each row of x (N, D); eps 0 means 1e-5.
func LayerNorm(x, gamma, beta *gorgonia.Node, eps float64) (*gorgonia.Node, error) {
	xs := x.Shape()
	if len(xs) != 2 {
		return nil, fmt.Errorf("ops.LayerNorm: x has shape %v, want (N, D)", xs)
	}
	for _, p := range []struct {
		name string
		n    *gorgonia.Node
	}{{"gamma", gamma}, {"beta", beta}} {
		if s := p.n.Shape(); len(s) != 1 || s[0] != xs[1] {
			return nil, fmt.Errorf("ops.LayerNorm: %s has shape %v, want (%d) for x of shape %v", p.name, s, xs[1], xs)
		}
	}
	if eps == 0 {
		eps = 1e-5
	}
	if !(eps > 0) || math.IsInf(eps, 0) {
		return nil, fmt.Errorf("ops.LayerNorm: eps %v is not a positive number", eps)
	}
	n, err := gorgonia.ApplyOp(&LayerNormOp{eps: eps, id: nextID()}, x, gamma, beta)
	if err != nil {
		return nil, fmt.Errorf("ops.LayerNorm: %w", err)
	}
	return n, nil
}

// IsLayerNorm reports whether n is a layer-norm node of this library.
func IsLayerNorm(n *gorgonia.Node) bool {
	_, ok := n.Op().(*LayerNormOp)
	return ok
}

// Eps is the constant added to the variance.
func (op *LayerNormOp) Eps() float64 { return op.eps }

func (op *LayerNormOp) Arity() int { return 3 }
func (op *LayerNormOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t, v := tensorType(2, a), tensorType(1, a)
	return fnType(t, v, v, t)
}
func (op *LayerNormOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	return clonedShape(in[0])
}
func (op *LayerNormOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "LayerNorm#%d", op.id) }
func (op *LayerNormOp) Hashcode() uint32      { return hashOf(op) }
func (op *LayerNormOp) String() string        { return "LayerNorm" }

func lnDims(name string, x *tensor.Dense) (n, d int, err error) {
	s := x.Shape()
	if len(s) != 2 {
		return 0, 0, fmt.Errorf("%s: input has shape %v, want (N, D)", name, s)
	}
	return s[0], s[1], nil
}

func (op *LayerNormOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "LayerNorm"
	args, err := floatArgs(name, 3, vs)
	if err != nil {
		return nil, err
	}
	x, gamma, beta := args[0], args[1], args[2]
	n, d, err := lnDims(name, x)
	if err != nil {
		return nil, err
	}
	if err := bnCheckVec(name, 1, gamma, d); err != nil {
		return nil, err
	}
	if err := bnCheckVec(name, 2, beta, d); err != nil {
		return nil, err
	}
	op.mean = normGrow(op.mean, n)
	op.invstd = normGrow(op.invstd, n)
	y := op.out.get(x.Dtype(), x.Shape()...)
	if x.Dtype() == tensor.Float32 {
		lnForward(lnFwdArgs[float32]{x: x.Float32s(), y: y.Float32s(), gamma: gamma.Float32s(), beta: beta.Float32s(),
			mean: op.mean, invstd: op.invstd, d: d, eps: op.eps})
	} else {
		lnForward(lnFwdArgs[float64]{x: x.Float64s(), y: y.Float64s(), gamma: gamma.Float64s(), beta: beta.Float64s(),
			mean: op.mean, invstd: op.invstd, d: d, eps: op.eps})
	}
	op.savedN, op.savedD = n, d
	return y, nil
}

type lnFwdArgs[T Float] struct {
	x, y, gamma, beta []T
	mean, invstd      []float64
	d                 int
	eps               float64
}

func lnForward[T Float](a lnFwdArgs[T]) {
	n := len(a.mean)
	if normSerial(n, a.d) {
		a.run(0, n)
		return
	}
	cpu.ParallelItems(n, a.d, a.run)
}

func (a lnFwdArgs[T]) run(lo, hi int) {
	d := a.d
	for r := lo; r < hi; r++ {
		xs, ys := a.x[r*d:(r+1)*d], a.y[r*d:(r+1)*d]
		k := xs[0]
		var s1, s2 float64
		for _, v := range xs {
			e := float64(v - k)
			s1 += e
			s2 += e * e
		}
		dm := s1 / float64(d)
		v := s2/float64(d) - dm*dm
		if v < 0 {
			v = 0
		}
		a.mean[r] = float64(k) + dm
		a.invstd[r] = 1 / math.Sqrt(v+a.eps)
		mean, is := a.mean[r], a.invstd[r]
		for i, v := range xs {
			ys[i] = T((float64(v)-mean)*is*float64(a.gamma[i]) + float64(a.beta[i]))
		}
	}
}

func (op *LayerNormOp) DiffWRT(int) []bool { return []bool{true, true, true} }

func (op *LayerNormOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if len(inputs) != 3 {
		return nil, fmt.Errorf("LayerNorm backward: expected 3 inputs, got %d", len(inputs))
	}
	x, gamma := inputs[0], inputs[1]
	dx, err := gorgonia.ApplyOp(&lnInputGradOp{fwd: op, id: nextID()}, x, gamma, output, grad)
	if err != nil {
		return nil, fmt.Errorf("LayerNorm backward: %w", err)
	}
	red, err := gorgonia.ApplyOp(&lnParamGradOp{fwd: op, id: nextID()}, x, output, grad)
	if err != nil {
		return nil, fmt.Errorf("LayerNorm backward: %w", err)
	}
	dgamma, dbeta, err := normSplitRows(red)
	if err != nil {
		return nil, fmt.Errorf("LayerNorm backward: %w", err)
	}
	return gorgonia.Nodes{dx, dgamma, dbeta}, nil
}

func (op *LayerNormOp) checkSaved(name string, x *tensor.Dense) (n, d int, err error) {
	if n, d, err = lnDims(name, x); err != nil {
		return
	}
	if n != op.savedN || d != op.savedD {
		err = fmt.Errorf("%s: the forward pass has not run for input shape %v", name, x.Shape())
	}
	return
}

// lnInputGradOp computes dx from x, gamma, y (read only to order it after
// the forward) and dy, row by row:
// dx = invstd * (g - mean(g) - xhat * mean(g*xhat)) with g = dy*gamma.
type lnInputGradOp struct {
	noCommon
	nonDiff
	fwd *LayerNormOp
	id  uint64
	outBuf
}

func (op *lnInputGradOp) Arity() int { return 4 }
func (op *lnInputGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t := tensorType(2, a)
	return fnType(t, tensorType(1, a), t, t, t)
}
func (op *lnInputGradOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	return clonedShape(in[0])
}
func (op *lnInputGradOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "LayerNormInputGrad#%d", op.id) }
func (op *lnInputGradOp) Hashcode() uint32      { return hashOf(op) }
func (op *lnInputGradOp) String() string        { return "LayerNormInputGrad" }

func (op *lnInputGradOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "LayerNormInputGrad"
	args, err := floatArgs(name, 4, vs)
	if err != nil {
		return nil, err
	}
	x, gamma, dy := args[0], args[1], args[3]
	if !sameShape(x.Shape(), dy.Shape()) {
		return nil, fmt.Errorf("%s: dy has shape %v, x has %v", name, dy.Shape(), x.Shape())
	}
	_, d, err := op.fwd.checkSaved(name, x)
	if err != nil {
		return nil, err
	}
	if err := bnCheckVec(name, 1, gamma, d); err != nil {
		return nil, err
	}
	dx := op.out.get(x.Dtype(), x.Shape()...)
	if x.Dtype() == tensor.Float32 {
		lnInputGrad(lnDxArgs[float32]{x: x.Float32s(), gamma: gamma.Float32s(), dy: dy.Float32s(), dx: dx.Float32s(),
			mean: op.fwd.mean, invstd: op.fwd.invstd, d: d})
	} else {
		lnInputGrad(lnDxArgs[float64]{x: x.Float64s(), gamma: gamma.Float64s(), dy: dy.Float64s(), dx: dx.Float64s(),
			mean: op.fwd.mean, invstd: op.fwd.invstd, d: d})
	}
	return dx, nil
}

type lnDxArgs[T Float] struct {
	x, gamma, dy, dx []T
	mean, invstd     []float64
	d                int
}

func lnInputGrad[T Float](a lnDxArgs[T]) {
	n := len(a.mean)
	if normSerial(n, a.d) {
		a.run(0, n)
		return
	}
	cpu.ParallelItems(n, a.d, a.run)
}

// run works in float64 whatever T: the three terms of dx nearly cancel
// for short rows, and float32 arithmetic would lose the difference.
func (a lnDxArgs[T]) run(lo, hi int) {
	d := a.d
	for r := lo; r < hi; r++ {
		xs, dys, dxs := a.x[r*d:(r+1)*d], a.dy[r*d:(r+1)*d], a.dx[r*d:(r+1)*d]
		mean, is := a.mean[r], a.invstd[r]
		var s1, s2 float64
		for i, v := range xs {
			g := float64(dys[i]) * float64(a.gamma[i])
			s1 += g
			s2 += g * (float64(v) - mean)
		}
		// dx = invstd*g - invstd*s1/D - (x-mean)*invstd^3*s2/D
		c0 := -is * s1 / float64(d)
		b := -is * is * is * s2 / float64(d)
		for i, v := range xs {
			dxs[i] = T(is*float64(dys[i])*float64(a.gamma[i]) + b*(float64(v)-mean) + c0)
		}
	}
}

// lnParamGradOp computes, from x, y (for ordering) and dy, the (2, D)
// tensor whose rows are the gradients of gamma (column sums of dy*xhat) and
// beta (column sums of dy).
type lnParamGradOp struct {
	noCommon
	nonDiff
	fwd *LayerNormOp
	id  uint64
	outBuf
	acc []float64 // 2*D float64 column sums
}

func (op *lnParamGradOp) Arity() int { return 3 }
func (op *lnParamGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t := tensorType(2, a)
	return fnType(t, t, t, t)
}
func (op *lnParamGradOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	if len(s) != 2 {
		return nil, fmt.Errorf("LayerNormParamGrad: input shape %v, want (N, D)", s)
	}
	return tensor.Shape{2, s[1]}, nil
}
func (op *lnParamGradOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "LayerNormParamGrad#%d", op.id) }
func (op *lnParamGradOp) Hashcode() uint32      { return hashOf(op) }
func (op *lnParamGradOp) String() string        { return "LayerNormParamGrad" }

func (op *lnParamGradOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "LayerNormParamGrad"
	args, err := floatArgs(name, 3, vs)
	if err != nil {
		return nil, err
	}
	x, dy := args[0], args[2]
	if !sameShape(x.Shape(), dy.Shape()) {
		return nil, fmt.Errorf("%s: dy has shape %v, x has %v", name, dy.Shape(), x.Shape())
	}
	n, d, err := op.fwd.checkSaved(name, x)
	if err != nil {
		return nil, err
	}
	op.acc = normGrow(op.acc, 2*d)
	red := op.out.get(x.Dtype(), 2, d)
	if x.Dtype() == tensor.Float32 {
		lnParamGrad(lnRedArgs[float32]{x: x.Float32s(), dy: dy.Float32s(), red: red.Float32s(),
			mean: op.fwd.mean, invstd: op.fwd.invstd, acc: op.acc, n: n, d: d})
	} else {
		lnParamGrad(lnRedArgs[float64]{x: x.Float64s(), dy: dy.Float64s(), red: red.Float64s(),
			mean: op.fwd.mean, invstd: op.fwd.invstd, acc: op.acc, n: n, d: d})
	}
	return red, nil
}

type lnRedArgs[T Float] struct {
	x, dy, red   []T
	mean, invstd []float64
	acc          []float64
	n, d         int
}

func lnParamGrad[T Float](a lnRedArgs[T]) {
	if normSerial(a.d, a.n) {
		a.run(0, a.d)
		return
	}
	cpu.ParallelItems(a.d, a.n, a.run)
}

// run sums columns [lo, hi) over all rows, rows outer so that the inner
// loop runs along memory.
func (a lnRedArgs[T]) run(lo, hi int) {
	d := a.d
	sg, sb := a.acc[lo:hi], a.acc[d+lo:d+hi]
	clear(sg)
	clear(sb)
	for r := 0; r < a.n; r++ {
		xs, dys := a.x[r*d+lo:r*d+hi], a.dy[r*d+lo:r*d+hi]
		mean, is := a.mean[r], a.invstd[r]
		for i, v := range xs {
			g := float64(dys[i])
			sg[i] += g * (float64(v) - mean) * is
			sb[i] += g
		}
	}
	for i := lo; i < hi; i++ {
		a.red[i] = T(a.acc[i])
		a.red[d+i] = T(a.acc[d+i])
	}
}
