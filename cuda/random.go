package cuda

import (
	"fmt"
	"reflect"

	"github.com/eraserelu/eraserelu/graph/ops"
	"github.com/eraserelu/eraserelu/graph/ops/rng"
	"gorgonia.org/gorgonia"
)

// Dropout and stochastic depth on the device draw exactly the CPU ops'
// masks: both draw from the streams of graph/ops/rng (the reference
// interpreter calls them; kernels/ops.cu mirrors them). The step counter of
// every random op is a uint64 in the step's RNG buffer; the kernels read it
// there, so a captured CUDA graph replays with the counter the device holds,
// and rng_advance, the last instruction of the backward pass, increments it:
// one draw per op per step, as graph.Program.Train draws. Backward kernels
// recompute the mask from the same counter instead of storing it.

// words splits a 64-bit value into the two int kernel arguments (low, high).
func words(x uint64) (int, int) { return int(uint32(x)), int(uint32(x >> 32)) }

func unwords(lo, hi int) uint64 { return uint64(uint32(lo)) | uint64(uint32(hi))<<32 }

// randomSlot returns the counter of a forward random op, adding it to the
// step's RNG buffer (created by the first random op) the first time.
func (l *lowerer) randomSlot(op gorgonia.Op, n *gorgonia.Node) (int, error) {
	key := reflect.ValueOf(op).Pointer()
	if slot, ok := l.random[key]; ok {
		return slot, nil
	}
	st, ok := op.(RNGStater)
	if !ok {
		return 0, fmt.Errorf("%T has no RNG state", op)
	}
	s := l.s
	if s.RNG < 0 {
		s.RNG = s.buf("rng", 0, Hyper)
	}
	slot := len(s.Randoms)
	s.Randoms = append(s.Randoms, RandomOp{Name: nodeName(n), Op: st})
	s.Bufs[s.RNG].Elems = 2 * len(s.Randoms)
	l.random[key] = slot
	return slot, nil
}

// randomBwd emits a backward random op: the forward's kernel with the
// forward's arguments (seed, counter, threshold), applied to dy.
func (l *lowerer) randomBwd(n *gorgonia.Node, dy int) (int, error) {
	fw, ok := l.randomFwd[field(n.Op(), "fwd").Pointer()]
	if !ok {
		return 0, fmt.Errorf("backward op %v before its forward", n.Op())
	}
	dx := l.out(n)
	l.emit(fw.Kernel, fw.Ints, fw.Floats, []int{dy, l.s.RNG, dx}, []int{dx}, n)
	return dx, nil
}

// randomFwd emits a forward random op and records it for its backward.
func (l *lowerer) randomFwdEmit(op gorgonia.Op, n *gorgonia.Node, kernel string, ints []int, floats []float64, x int) int {
	y := l.out(n)
	l.emit(kernel, ints, floats, []int{x, l.s.RNG, y}, []int{y}, n)
	l.randomFwd[reflect.ValueOf(op).Pointer()] = l.s.Instrs[len(l.s.Instrs)-1]
	return y
}

// emitRNGAdvance ends the backward pass: every counter moves to the next draw.
func (l *lowerer) emitRNGAdvance() {
	s := l.s
	if len(s.Randoms) == 0 {
		return
	}
	s.emit(Instr{Kernel: "rng_advance", Ints: []int{len(s.Randoms)}, Bufs: []int{s.RNG}, Writes: []int{s.RNG}, Node: "rng advance"})
}

func dropoutArgs(op *ops.DropoutOp, elems, slot int) ([]int, []float64) {
	lo, hi := words(field(op, "seed").Uint())
	return []int{elems, lo, hi, slot, int(rng.DropThreshold(op.Rate()))}, []float64{1 / (1 - op.Rate())}
}

// DropoutOp(x) -> y = x*mask/(1-p), training mode.
func lowerDropout(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	op := n.Op().(*ops.DropoutOp)
	slot, err := l.randomSlot(op, n)
	if err != nil {
		return 0, err
	}
	ints, floats := dropoutArgs(op, elems(n), slot)
	return l.randomFwdEmit(op, n, "dropout_apply", ints, floats, in[0]), nil
}

// dropoutBackwardOp(y, dy) -> dx = dy*mask/(1-p): the same kernel and mask
// (y only orders the op after the forward).
func lowerDropoutBwd(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	return l.randomBwd(n, in[1])
}

func stochDepthArgs(op *ops.StochasticDepthOp, elems, slot int) []int {
	lo, hi := words(field(op, "seed").Uint())
	tlo, thi := words(rng.SurvivalThreshold(op.Survival()))
	return []int{elems, lo, hi, slot, tlo, thi}
}

// StochasticDepthOp(branch) -> branch or zeros, training mode.
func lowerStochDepth(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	op := n.Op().(*ops.StochasticDepthOp)
	slot, err := l.randomSlot(op, n)
	if err != nil {
		return 0, err
	}
	return l.randomFwdEmit(op, n, "stochdepth_apply", stochDepthArgs(op, elems(n), slot), nil, in[0]), nil
}

// stochDepthBackwardOp(y, dy) -> dy or zeros: the forward's gate.
func lowerStochDepthBwd(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	return l.randomBwd(n, in[1])
}

// DropoutOp in inference mode is the identity: its output is its input's buffer.
func lowerDropoutInfer(l *lowerer, n *gorgonia.Node, in []int) (int, error) { return in[0], nil }

// StochasticDepthOp in inference mode scales the branch by the survival
// probability, y = x*float32(survival) as the CPU rounds it: dropout_apply
// with threshold 0 keeps every element and multiplies it by its scale (the
// counter it reads, the training step's, does not matter then).
func lowerStochDepthInfer(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	op := n.Op().(*ops.StochasticDepthOp)
	if l.base.RNG < 0 {
		return 0, fmt.Errorf("the training step has no RNG buffer for %v", op)
	}
	y := l.out(n)
	l.emit("dropout_apply", []int{elems(n), 0, 0, 0, 0}, []float64{op.Survival()}, []int{in[0], l.shareBuf(l.base.RNG), y}, []int{y}, n)
	return y, nil
}
