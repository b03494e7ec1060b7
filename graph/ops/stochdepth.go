package ops

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"github.com/eraserelu/eraserelu/graph/ops/rng"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// StochasticDepthOp gates a residual branch (Huang et al. 2016, "Deep
// Networks with Stochastic Depth"): in training mode each forward keeps the
// whole branch, for the whole mini-batch, with probability survival, and
// otherwise outputs zeros; in inference mode it outputs branch * survival.
// The backward pass applies the same gate. Decisions come from a
// counter-based generator, so the same seed gives the same sequence.
type StochasticDepthOp struct {
	noCommon
	rank     int
	survival float64
	mode     *Mode
	seed     uint64
	id       uint64
	outBuf

	// private state, read by the backward op
	step     uint64
	kept     bool // decision of the last training forward
	drawn    bool
	frozen   bool
	training bool // mode of the last forward
	size     int
}

// StochasticDepth gates branch with survival probability survival in (0, 1].
func StochasticDepth(branch *gorgonia.Node, survival float64, mode *Mode, seed uint64) (*gorgonia.Node, error) {
	if !(survival > 0 && survival <= 1) {
		return nil, fmt.Errorf("ops.StochasticDepth: survival probability %v outside (0, 1]", survival)
	}
	if mode == nil {
		return nil, fmt.Errorf("ops.StochasticDepth: nil mode")
	}
	if branch.Dims() == 0 {
		return nil, fmt.Errorf("ops.StochasticDepth: branch is a scalar")
	}
	n, err := gorgonia.ApplyOp(&StochasticDepthOp{rank: branch.Dims(), survival: survival, mode: mode, seed: seed, id: nextID()}, branch)
	if err != nil {
		return nil, fmt.Errorf("ops.StochasticDepth: %w", err)
	}
	return n, nil
}

// IsStochasticDepth reports whether n is a stochastic-depth gate of this library.
func IsStochasticDepth(n *gorgonia.Node) bool {
	_, ok := n.Op().(*StochasticDepthOp)
	return ok
}

// Survival is the probability of keeping the branch in training.
func (op *StochasticDepthOp) Survival() float64 { return op.survival }

// Kept reports whether the last training-mode forward kept the branch.
func (op *StochasticDepthOp) Kept() bool { return op.kept }

// FreezeGate(true) makes training-mode forwards reuse the last decision
// (drawing one if there is none yet); for gradient checks.
func (op *StochasticDepthOp) FreezeGate(on bool) { op.frozen = on }

func (op *StochasticDepthOp) Arity() int { return 1 }
func (op *StochasticDepthOp) Type() hm.Type {
	t := tensorType(op.rank, hm.TypeVariable('a'))
	return fnType(t, t)
}
func (op *StochasticDepthOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	return clonedShape(in[0])
}
func (op *StochasticDepthOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "StochasticDepth%d(%v,%d)#%d", op.rank, op.survival, op.seed, op.id)
}
func (op *StochasticDepthOp) Hashcode() uint32 { return hashOf(op) }
func (op *StochasticDepthOp) String() string {
	return fmt.Sprintf("StochasticDepth(%v)", op.survival)
}

// factor is the multiplier of the last forward.
func (op *StochasticDepthOp) factor() float64 {
	switch {
	case !op.training:
		return op.survival
	case op.kept:
		return 1
	}
	return 0
}

func (op *StochasticDepthOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "StochasticDepth"
	if err := argCount(name, 1, vs); err != nil {
		return nil, err
	}
	x, err := argDense(name, 0, vs[0])
	if err != nil {
		return nil, err
	}
	op.training, op.size = op.mode.Training(), x.Size()
	if op.training && !(op.frozen && op.drawn) {
		op.kept = rng.Survives(rng.Base(op.seed, op.step), rng.SurvivalThreshold(op.survival))
		op.step++
		op.drawn = true
	}
	y := op.out.get(x.Dtype(), x.Shape()...)
	f := op.factor()
	if x.Dtype() == tensor.Float32 {
		normGate(y.Float32s(), x.Float32s(), float32(f))
	} else {
		normGate(y.Float64s(), x.Float64s(), f)
	}
	return y, nil
}

// normGate writes y = x*f, zeroing y when f is 0 (even where x is Inf or NaN).
func normGate[T Float](y, x []T, f T) {
	if f == 0 {
		clear(y)
		return
	}
	normScaleInto(y, x, f)
}

func (op *StochasticDepthOp) DiffWRT(int) []bool { return []bool{true} }
func (op *StochasticDepthOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	dx, err := gorgonia.ApplyOp(&stochDepthBackwardOp{fwd: op, id: nextID()}, output, grad)
	if err != nil {
		return nil, fmt.Errorf("StochasticDepth backward: %w", err)
	}
	return gorgonia.Nodes{dx}, nil
}

// stochDepthBackwardOp computes dx = dy * factor of the last forward, from y
// (read only to order it after the forward) and dy.
type stochDepthBackwardOp struct {
	noCommon
	nonDiff
	fwd *StochasticDepthOp
	id  uint64
	outBuf
}

// ordersOnly: the forward output is an input only to order the op after
// the forward pass (the mask is private state).
func (op *stochDepthBackwardOp) ordersOnly(i int) bool { return i == 0 }

func (op *stochDepthBackwardOp) Arity() int { return 2 }
func (op *stochDepthBackwardOp) Type() hm.Type {
	t := tensorType(op.fwd.rank, hm.TypeVariable('a'))
	return fnType(t, t, t)
}
func (op *stochDepthBackwardOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	return clonedShape(in[0])
}
func (op *stochDepthBackwardOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "StochasticDepthBackward%d#%d", op.fwd.rank, op.id)
}
func (op *stochDepthBackwardOp) Hashcode() uint32 { return hashOf(op) }
func (op *stochDepthBackwardOp) String() string   { return "StochasticDepthBackward" }

func (op *stochDepthBackwardOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "StochasticDepthBackward"
	if err := argCount(name, 2, vs); err != nil {
		return nil, err
	}
	dy, err := argDense(name, 1, vs[1])
	if err != nil {
		return nil, err
	}
	if dy.Size() != op.fwd.size {
		return nil, fmt.Errorf("%s: dy has %d elements, the last forward had %d", name, dy.Size(), op.fwd.size)
	}
	dx := op.out.get(dy.Dtype(), dy.Shape()...)
	f := op.fwd.factor()
	if dy.Dtype() == tensor.Float32 {
		normGate(dx.Float32s(), dy.Float32s(), float32(f))
	} else {
		normGate(dx.Float64s(), dy.Float64s(), f)
	}
	return dx, nil
}
