package ops

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"github.com/eraserelu/eraserelu/graph/ops/rng"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// DropoutOp is inverted dropout as one node. In training mode each element
// is zeroed with probability p and the kept ones are scaled by 1/(1-p), so
// that E[y] = x; in inference mode it is the identity. The backward pass
// applies the same mask and scale.
//
// The mask comes from a counter-based generator (SplitMix64 of the seed,
// the number of the forward and the element index): the same seed gives
// the same sequence of masks, independently of the number of cores.
type DropoutOp struct {
	noCommon
	rank int
	p    float64
	mode *Mode
	seed uint64
	id   uint64
	outBuf

	// private state, read by the backward op
	step     uint64  // masks drawn so far
	keep     []uint8 // mask of the last training forward (1 = kept)
	hasMask  bool
	frozen   bool
	training bool // mode of the last forward
	size     int  // element count of the last forward
}

// Dropout zeroes elements of x with probability p (0 <= p < 1) in training
// mode; seed fixes the sequence of masks.
func Dropout(x *gorgonia.Node, p float64, mode *Mode, seed uint64) (*gorgonia.Node, error) {
	if !(p >= 0 && p < 1) {
		return nil, fmt.Errorf("ops.Dropout: probability %v outside [0, 1)", p)
	}
	if mode == nil {
		return nil, fmt.Errorf("ops.Dropout: nil mode")
	}
	if x.Dims() == 0 {
		return nil, fmt.Errorf("ops.Dropout: x is a scalar")
	}
	n, err := gorgonia.ApplyOp(&DropoutOp{rank: x.Dims(), p: p, mode: mode, seed: seed, id: nextID()}, x)
	if err != nil {
		return nil, fmt.Errorf("ops.Dropout: %w", err)
	}
	return n, nil
}

// IsDropout reports whether n is a dropout node of this library.
func IsDropout(n *gorgonia.Node) bool {
	_, ok := n.Op().(*DropoutOp)
	return ok
}

// Rate is the drop probability p.
func (op *DropoutOp) Rate() float64 { return op.p }

// FreezeMask(true) makes training-mode forwards reuse the last mask (the
// first forward after freezing still draws one if there is none of the
// right size) instead of drawing a new one; for gradient checks, which
// perturb the input and rerun the forward. FreezeMask(false) resumes drawing.
func (op *DropoutOp) FreezeMask(on bool) { op.frozen = on }

func (op *DropoutOp) Arity() int { return 1 }
func (op *DropoutOp) Type() hm.Type {
	t := tensorType(op.rank, hm.TypeVariable('a'))
	return fnType(t, t)
}
func (op *DropoutOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	return clonedShape(in[0])
}
func (op *DropoutOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "Dropout%d(%v,%d)#%d", op.rank, op.p, op.seed, op.id)
}
func (op *DropoutOp) Hashcode() uint32 { return hashOf(op) }
func (op *DropoutOp) String() string   { return fmt.Sprintf("Dropout(%v)", op.p) }

func (op *DropoutOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "Dropout"
	if err := argCount(name, 1, vs); err != nil {
		return nil, err
	}
	x, err := argDense(name, 0, vs[0])
	if err != nil {
		return nil, err
	}
	n := x.Size()
	y := op.out.get(x.Dtype(), x.Shape()...)
	op.training, op.size = op.mode.Training(), n
	if !op.training {
		if x.Dtype() == tensor.Float32 {
			normScaleInto(y.Float32s(), x.Float32s(), 1)
		} else {
			normScaleInto(y.Float64s(), x.Float64s(), 1)
		}
		return y, nil
	}
	draw := !(op.frozen && op.hasMask && len(op.keep) == n)
	op.keep = normGrow(op.keep, n)
	var base uint64
	if draw {
		base = rng.Base(op.seed, op.step)
		op.step++
		op.hasMask = true
	}
	thr := rng.DropThreshold(op.p)
	scale := 1 / (1 - op.p)
	if x.Dtype() == tensor.Float32 {
		dropoutForward(dropArgs[float32]{x: x.Float32s(), y: y.Float32s(), keep: op.keep, scale: float32(scale), base: base, thr: thr, draw: draw})
	} else {
		dropoutForward(dropArgs[float64]{x: x.Float64s(), y: y.Float64s(), keep: op.keep, scale: scale, base: base, thr: thr, draw: draw})
	}
	return y, nil
}

type dropArgs[T Float] struct {
	x, y  []T
	keep  []uint8
	scale T
	base  uint64
	thr   uint32
	draw  bool
}

func dropoutForward[T Float](a dropArgs[T]) {
	pairs := (len(a.x) + 1) / 2
	if normSerial(pairs, 2) {
		a.run(0, pairs)
		return
	}
	parallelFor(pairs, a.run)
}

// run handles elements [2*lo, 2*hi): one 64-bit draw gives two 32-bit ones.
func (a dropArgs[T]) run(lo, hi int) {
	n := len(a.x)
	for j := lo; j < hi; j++ {
		i := 2 * j
		if a.draw {
			h := rng.Pair(a.base, j)
			a.keep[i] = dropKeep(uint32(h) >= a.thr)
			if i+1 < n {
				a.keep[i+1] = dropKeep(uint32(h>>32) >= a.thr)
			}
		}
		for k := i; k < i+2 && k < n; k++ {
			if a.keep[k] != 0 {
				a.y[k] = a.x[k] * a.scale
			} else {
				a.y[k] = 0
			}
		}
	}
}

func dropKeep(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func (op *DropoutOp) DiffWRT(int) []bool { return []bool{true} }
func (op *DropoutOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	dx, err := gorgonia.ApplyOp(&dropoutBackwardOp{fwd: op, id: nextID()}, output, grad)
	if err != nil {
		return nil, fmt.Errorf("Dropout backward: %w", err)
	}
	return gorgonia.Nodes{dx}, nil
}

// dropoutBackwardOp computes dx = dy * mask / (1-p) (training) or dy
// (inference) from y (read only to order it after the forward) and dy.
type dropoutBackwardOp struct {
	noCommon
	nonDiff
	fwd *DropoutOp
	id  uint64
	outBuf
}

// ordersOnly: the forward output is an input only to order the op after
// the forward pass (the mask is private state).
func (op *dropoutBackwardOp) ordersOnly(i int) bool { return i == 0 }

func (op *dropoutBackwardOp) Arity() int { return 2 }
func (op *dropoutBackwardOp) Type() hm.Type {
	t := tensorType(op.fwd.rank, hm.TypeVariable('a'))
	return fnType(t, t, t)
}
func (op *dropoutBackwardOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	return clonedShape(in[0])
}
func (op *dropoutBackwardOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "DropoutBackward%d#%d", op.fwd.rank, op.id)
}
func (op *dropoutBackwardOp) Hashcode() uint32 { return hashOf(op) }
func (op *dropoutBackwardOp) String() string   { return "DropoutBackward" }

func (op *dropoutBackwardOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "DropoutBackward"
	if err := argCount(name, 2, vs); err != nil {
		return nil, err
	}
	dy, err := argDense(name, 1, vs[1])
	if err != nil {
		return nil, err
	}
	f := op.fwd
	if dy.Size() != f.size {
		return nil, fmt.Errorf("%s: dy has %d elements, the last forward had %d", name, dy.Size(), f.size)
	}
	dx := op.out.get(dy.Dtype(), dy.Shape()...)
	if !f.training {
		if dy.Dtype() == tensor.Float32 {
			normScaleInto(dx.Float32s(), dy.Float32s(), 1)
		} else {
			normScaleInto(dx.Float64s(), dy.Float64s(), 1)
		}
		return dx, nil
	}
	scale := 1 / (1 - f.p)
	if dy.Dtype() == tensor.Float32 {
		dropoutForward(dropArgs[float32]{x: dy.Float32s(), y: dx.Float32s(), keep: f.keep, scale: float32(scale)})
	} else {
		dropoutForward(dropArgs[float64]{x: dy.Float64s(), y: dx.Float64s(), keep: f.keep, scale: scale})
	}
	return dx, nil
}

// normScaleArgs is y = x*s elementwise (a copy when s is 1).
type normScaleArgs[T Float] struct {
	y, x []T
	s    T
}

func (a normScaleArgs[T]) run(lo, hi int) {
	if a.s == 1 {
		copy(a.y[lo:hi], a.x[lo:hi])
		return
	}
	ys, xs := a.y[lo:hi], a.x[lo:hi]
	for i, v := range xs {
		ys[i] = v * a.s
	}
}

func normScaleInto[T Float](y, x []T, s T) {
	a := normScaleArgs[T]{y: y, x: x, s: s}
	if normSerial(len(x), 1) {
		a.run(0, len(x))
		return
	}
	parallelFor(len(x), a.run)
}
