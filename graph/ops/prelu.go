package ops

import (
	"fmt"
	"github.com/eraserelu/eraserelu/graph/ops/cpu"
	"hash"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// PReLUOp is the parametric rectifier (He et al. 2015) with one slope per
// channel (axis 1): y = x if x > 0 else alpha[c]*x. The erase pass can put
// it in place of a ReLU (the paper's Table 1 PReLU variants).
type PReLUOp struct {
	noCommon
	rank int
	id   uint64
	outBuf
}

// PReLU applies the parametric rectifier to x, (N,C) or (N,C,H,W), with the
// per-channel slopes alpha, shape (C).
func PReLU(x, alpha *gorgonia.Node) (*gorgonia.Node, error) {
	xs := x.Shape()
	if len(xs) != 2 && len(xs) != 4 {
		return nil, fmt.Errorf("ops.PReLU: x has shape %v, want (N,C) or (N,C,H,W)", xs)
	}
	if s := alpha.Shape(); len(s) != 1 || s[0] != xs[1] {
		return nil, fmt.Errorf("ops.PReLU: alpha has shape %v, want (%d) for x of shape %v", s, xs[1], xs)
	}
	n, err := gorgonia.ApplyOp(&PReLUOp{rank: len(xs), id: nextID()}, x, alpha)
	if err != nil {
		return nil, fmt.Errorf("ops.PReLU: %w", err)
	}
	return n, nil
}

// IsPReLU reports whether n is a PReLU node of this library.
func IsPReLU(n *gorgonia.Node) bool {
	_, ok := n.Op().(*PReLUOp)
	return ok
}

func (op *PReLUOp) Arity() int { return 2 }
func (op *PReLUOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t := tensorType(op.rank, a)
	return fnType(t, tensorType(1, a), t)
}
func (op *PReLUOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	return clonedShape(in[0])
}
func (op *PReLUOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "PReLU%d#%d", op.rank, op.id) }
func (op *PReLUOp) Hashcode() uint32      { return hashOf(op) }
func (op *PReLUOp) String() string        { return "PReLU" }

// preluArgs checks x (rank op.rank) and a per-channel vector at input 1.
func preluArgs(name string, rank int, vs []gorgonia.Value, arity int) (x, alpha *tensor.Dense, n, c, inner int, err error) {
	if err = argCount(name, arity, vs); err != nil {
		return
	}
	if x, err = argDense(name, 0, vs[0]); err != nil {
		return
	}
	if alpha, err = argLike(name, 1, vs[1], x); err != nil {
		return
	}
	if n, c, inner, err = bnDims(name, x, rank); err != nil {
		return
	}
	err = bnCheckVec(name, 1, alpha, c)
	return
}

func (op *PReLUOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	x, alpha, n, c, inner, err := preluArgs("PReLU", op.rank, vs, 2)
	if err != nil {
		return nil, err
	}
	y := op.out.get(x.Dtype(), x.Shape()...)
	if x.Dtype() == tensor.Float32 {
		preluRun(preluArgsT[float32]{x: x.Float32s(), alpha: alpha.Float32s(), y: y.Float32s(), n: n, c: c, inner: inner})
	} else {
		preluRun(preluArgsT[float64]{x: x.Float64s(), alpha: alpha.Float64s(), y: y.Float64s(), n: n, c: c, inner: inner})
	}
	return y, nil
}

// preluArgsT drives three kernels over (N*C) planes of inner elements:
// forward y = x>0 ? x : a*x (dy nil); input gradient y = x>0 ? dy : a*dy.
type preluArgsT[T Float] struct {
	x, alpha, dy, y []T
	n, c, inner     int
}

func preluRun[T Float](a preluArgsT[T]) {
	planes := a.n * a.c
	if normSerial(planes, a.inner) {
		a.run(0, planes)
		return
	}
	cpu.ParallelItems(planes, a.inner, a.run)
}

func (a preluArgsT[T]) run(lo, hi int) {
	in := a.inner
	for p := lo; p < hi; p++ {
		s := a.alpha[p%a.c]
		xs, ys := a.x[p*in:(p+1)*in], a.y[p*in:(p+1)*in]
		if a.dy == nil {
			for i, v := range xs {
				if v > 0 {
					ys[i] = v
				} else {
					ys[i] = s * v
				}
			}
			continue
		}
		dys := a.dy[p*in : (p+1)*in]
		for i, v := range xs {
			if v > 0 {
				ys[i] = dys[i]
			} else {
				ys[i] = s * dys[i]
			}
		}
	}
}

func (op *PReLUOp) DiffWRT(int) []bool { return []bool{true, true} }
func (op *PReLUOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if len(inputs) != 2 {
		return nil, fmt.Errorf("PReLU backward: expected 2 inputs, got %d", len(inputs))
	}
	x, alpha := inputs[0], inputs[1]
	dx, err := gorgonia.ApplyOp(&preluInputGradOp{rank: op.rank, id: nextID()}, x, alpha, grad)
	if err != nil {
		return nil, fmt.Errorf("PReLU backward: %w", err)
	}
	da, err := gorgonia.ApplyOp(&preluAlphaGradOp{rank: op.rank, id: nextID()}, x, grad)
	if err != nil {
		return nil, fmt.Errorf("PReLU backward: %w", err)
	}
	return gorgonia.Nodes{dx, da}, nil
}

// preluInputGradOp: dx = dy where x > 0, alpha*dy elsewhere.
type preluInputGradOp struct {
	noCommon
	nonDiff
	rank int
	id   uint64
	outBuf
}

func (op *preluInputGradOp) Arity() int { return 3 }
func (op *preluInputGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t := tensorType(op.rank, a)
	return fnType(t, tensorType(1, a), t, t)
}
func (op *preluInputGradOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	return clonedShape(in[0])
}
func (op *preluInputGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "PReLUInputGrad%d#%d", op.rank, op.id)
}
func (op *preluInputGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *preluInputGradOp) String() string   { return "PReLUInputGrad" }

func (op *preluInputGradOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "PReLUInputGrad"
	x, alpha, n, c, inner, err := preluArgs(name, op.rank, vs, 3)
	if err != nil {
		return nil, err
	}
	dy, err := argLike(name, 2, vs[2], x)
	if err != nil {
		return nil, err
	}
	if !sameShape(x.Shape(), dy.Shape()) {
		return nil, fmt.Errorf("%s: dy has shape %v, x has %v", name, dy.Shape(), x.Shape())
	}
	dx := op.out.get(x.Dtype(), x.Shape()...)
	if x.Dtype() == tensor.Float32 {
		preluRun(preluArgsT[float32]{x: x.Float32s(), alpha: alpha.Float32s(), dy: dy.Float32s(), y: dx.Float32s(), n: n, c: c, inner: inner})
	} else {
		preluRun(preluArgsT[float64]{x: x.Float64s(), alpha: alpha.Float64s(), dy: dy.Float64s(), y: dx.Float64s(), n: n, c: c, inner: inner})
	}
	return dx, nil
}

// preluAlphaGradOp: dalpha[c] = sum of dy*x over the elements of channel c
// where x <= 0.
type preluAlphaGradOp struct {
	noCommon
	nonDiff
	rank int
	id   uint64
	outBuf
}

func (op *preluAlphaGradOp) Arity() int { return 2 }
func (op *preluAlphaGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t := tensorType(op.rank, a)
	return fnType(t, t, tensorType(1, a))
}
func (op *preluAlphaGradOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	if len(s) < 2 {
		return nil, fmt.Errorf("PReLUAlphaGrad: input shape %v has no channel axis", s)
	}
	return tensor.Shape{s[1]}, nil
}
func (op *preluAlphaGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "PReLUAlphaGrad%d#%d", op.rank, op.id)
}
func (op *preluAlphaGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *preluAlphaGradOp) String() string   { return "PReLUAlphaGrad" }

func (op *preluAlphaGradOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "PReLUAlphaGrad"
	args, err := floatArgs(name, 2, vs)
	if err != nil {
		return nil, err
	}
	x, dy := args[0], args[1]
	if !sameShape(x.Shape(), dy.Shape()) {
		return nil, fmt.Errorf("%s: dy has shape %v, x has %v", name, dy.Shape(), x.Shape())
	}
	n, c, inner, err := bnDims(name, x, op.rank)
	if err != nil {
		return nil, err
	}
	da := op.out.get(x.Dtype(), x.Shape()[1:2]...)
	if x.Dtype() == tensor.Float32 {
		preluAlphaGrad(preluRedArgs[float32]{x: x.Float32s(), dy: dy.Float32s(), da: da.Float32s(), n: n, c: c, inner: inner})
	} else {
		preluAlphaGrad(preluRedArgs[float64]{x: x.Float64s(), dy: dy.Float64s(), da: da.Float64s(), n: n, c: c, inner: inner})
	}
	return da, nil
}

type preluRedArgs[T Float] struct {
	x, dy, da   []T
	n, c, inner int
}

func preluAlphaGrad[T Float](a preluRedArgs[T]) {
	if normSerial(a.c, a.n*a.inner) {
		a.run(0, a.c)
		return
	}
	cpu.ParallelItems(a.c, a.n*a.inner, a.run)
}

func (a preluRedArgs[T]) run(lo, hi int) {
	in, stride := a.inner, a.c*a.inner
	for c := lo; c < hi; c++ {
		var s float64
		for off := c * in; off < len(a.x); off += stride {
			xs, dys := a.x[off:off+in], a.dy[off:off+in]
			for i, v := range xs {
				if v <= 0 {
					s += float64(v * dys[i])
				}
			}
		}
		a.da[c] = T(s)
	}
}
