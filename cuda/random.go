package cuda

import (
	"fmt"
	"math"
	"reflect"

	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
)

// Dropout and stochastic depth on the device draw exactly the CPU ops'
// masks (graph/ops: dropout.go, stochdepth.go, batchnorm_util.go): the
// draw number step of an op seeded with seed has the base counter
//
//	base = splitmix(splitmix(seed) ^ splitmix(step + 0x632be59bd9b4e019)),
//
// dropout keeps element i iff the (i mod 2)-th 32-bit half of
// splitmix(base + (i/2)*0x9e3779b97f4a7c15) is at least round(p*2^32), and
// stochastic depth keeps the branch iff (base>>11) / 2^53 is below the
// survival probability. The step counter of every random op is a uint64
// in the step's RNG buffer; the kernels read it there, so a captured CUDA
// graph replays with the counter the device holds, and rng_advance, the last
// instruction of the backward pass, increments it: one draw per op per step,
// as graph.Program.Train draws. Backward kernels recompute the mask from
// the same counter instead of storing it.

// splitmix is normSplitmix of graph/ops (SplitMix64's finaliser).
func splitmix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// rngBase is normStream of graph/ops: the base counter of draw step.
func rngBase(seed, step uint64) uint64 {
	return splitmix(splitmix(seed) ^ splitmix(step+0x632be59bd9b4e019))
}

// dropoutThreshold is the CPU's: keep iff the 32-bit draw is at least it.
func dropoutThreshold(p float64) uint32 {
	return uint32(math.Min(math.Round(p*(1<<32)), math.MaxUint32))
}

// dropoutKeep is the mask bit of element i for base counter base.
func dropoutKeep(base uint64, i int, thr uint32) bool {
	h := splitmix(base + uint64(i/2)*0x9e3779b97f4a7c15)
	if i%2 == 1 {
		h >>= 32
	}
	return uint32(h) >= thr
}

// stochDepthThreshold turns the CPU's test u < survival, with u =
// m/2^53 and m = base>>11 an integer below 2^53, into the exact
// integer test m < ceil(survival*2^53) (the kernels take no float64).
func stochDepthThreshold(survival float64) uint64 {
	return uint64(math.Ceil(survival * (1 << 53)))
}

// stochDepthKeep is the gate of draw base.
func stochDepthKeep(base, thr uint64) bool { return base>>11 < thr }

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
	return []int{elems, lo, hi, slot, int(dropoutThreshold(op.Rate()))}, []float64{1 / (1 - op.Rate())}
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
	tlo, thi := words(stochDepthThreshold(op.Survival()))
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
