package cuda

import (
	"fmt"

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

// DropoutArgs: N elements, the stream of seed (SeedLo, SeedHi) at the draw
// counter in slot Slot of the RNG buffer; keep an element iff its 32-bit
// draw is at least Threshold, and scale the kept ones by Scale.
type DropoutArgs struct {
	N, SeedLo, SeedHi, Slot, Threshold int
	Scale                              float64
}

func (a *DropoutArgs) params() ([]*int, []*float64) {
	return []*int{&a.N, &a.SeedLo, &a.SeedHi, &a.Slot, &a.Threshold}, []*float64{&a.Scale}
}

// StochDepthArgs: N elements kept or zeroed together: kept iff the draw
// passes the survival threshold (ThrLo, ThrHi; rng.SurvivalThreshold).
type StochDepthArgs struct{ N, SeedLo, SeedHi, Slot, ThrLo, ThrHi int }

func (a *StochDepthArgs) params() ([]*int, []*float64) {
	return []*int{&a.N, &a.SeedLo, &a.SeedHi, &a.Slot, &a.ThrLo, &a.ThrHi}, nil
}

var (
	// counters: each +1
	rngAdvance = defKernel("rng_advance", 1, func(a ElemArgs) Dim { return perItem(a.N) }, func(_ *Ref, _ Instr, a ElemArgs, b [][]float32) {
		for i := 0; i < a.N; i++ {
			putU64(b[0], i, getU64(b[0], i)+1)
		}
	})
	// x, counters -> y; one thread per pair of elements (one 64-bit draw per pair)
	dropoutApply = defKernel("dropout_apply", 3, func(a DropoutArgs) Dim { return gridStride((a.N + 1) / 2) }, func(_ *Ref, _ Instr, a DropoutArgs, b [][]float32) {
		thr := uint32(a.Threshold)
		base := rng.Base(unwords(a.SeedLo, a.SeedHi), getU64(b[1], a.Slot))
		x, y, scale := b[0], b[2], float32(a.Scale)
		for i := 0; i < a.N; i++ {
			if rng.DropKeeps(base, i, thr) {
				y[i] = x[i] * scale
			} else {
				y[i] = 0
			}
		}
	})
	// x, counters -> y
	stochDepthApply = defKernel("stochdepth_apply", 3, func(a StochDepthArgs) Dim { return gridStride(a.N) }, func(_ *Ref, _ Instr, a StochDepthArgs, b [][]float32) {
		base := rng.Base(unwords(a.SeedLo, a.SeedHi), getU64(b[1], a.Slot))
		x, y := b[0][:a.N], b[2][:a.N]
		if rng.Survives(base, unwords(a.ThrLo, a.ThrHi)) {
			copy(y, x)
		} else {
			clear(y)
		}
	})
)

// randomSlot returns the counter of a forward random op, adding it to the
// step's RNG buffer (created by the first random op) the first time.
func (l *lowerer) randomSlot(op gorgonia.Op, n *gorgonia.Node) (int, error) {
	if slot, ok := l.random[op]; ok {
		return slot, nil
	}
	st, ok := op.(RNGStater)
	if !ok {
		return 0, fmt.Errorf("%v has no RNG state", op)
	}
	s := l.s
	if s.RNG < 0 {
		s.RNG = s.buf("rng", 0, Hyper)
	}
	slot := len(s.Randoms)
	s.Randoms = append(s.Randoms, RandomOp{Name: nodeName(n), Op: st})
	s.Bufs[s.RNG].Elems = 2 * len(s.Randoms)
	l.random[op] = slot
	return slot, nil
}

// lowerRandomBwd: (y, dy) -> dx, the forward's kernel with the forward's
// arguments (seed, counter, threshold) applied to dy: the same mask (y only
// orders the op after the forward).
func lowerRandomBwd(l *lowerer, n *gorgonia.Node, _ ops.Desc, in []int) (int, error) {
	fwd, err := forwardOf(n)
	if err != nil {
		return 0, err
	}
	fw, ok := l.randomFwdInstr[fwd]
	if !ok {
		return 0, fmt.Errorf("backward op %v before its forward", n.Op())
	}
	dx := l.out(n)
	l.emit(Instr{Kernel: fw.Kernel, Ints: fw.Ints, Floats: fw.Floats, Bufs: []int{in[1], l.s.RNG, dx}, Writes: []int{dx}}, n)
	return dx, nil
}

// randomFwd emits a forward random op (x -> y) and records it for its backward.
func (l *lowerer) randomFwd(n *gorgonia.Node, in Instr) int {
	l.emit(in, n)
	l.randomFwdInstr[n.Op()] = l.s.Instrs[len(l.s.Instrs)-1]
	return in.Bufs[2]
}

// emitRNGAdvance ends the backward pass: every counter moves to the next draw.
func (l *lowerer) emitRNGAdvance() {
	s := l.s
	if len(s.Randoms) == 0 {
		return
	}
	in := rngAdvance.instr(ElemArgs{N: len(s.Randoms)}, []int{s.RNG}, []int{s.RNG})
	in.Node = "rng advance"
	s.emit(in)
}

func dropoutArgs(r ops.RandomAttrs, elems, slot int) DropoutArgs {
	lo, hi := words(r.Seed)
	return DropoutArgs{N: elems, SeedLo: lo, SeedHi: hi, Slot: slot, Threshold: int(rng.DropThreshold(r.Rate)), Scale: 1 / (1 - r.Rate)}
}

func stochDepthArgs(r ops.RandomAttrs, elems, slot int) StochDepthArgs {
	lo, hi := words(r.Seed)
	tlo, thi := words(rng.SurvivalThreshold(r.Survival))
	return StochDepthArgs{N: elems, SeedLo: lo, SeedHi: hi, Slot: slot, ThrLo: tlo, ThrHi: thi}
}

// lowerDropout: y = x*mask/(1-p) in training; in inference the identity,
// its output its input's buffer.
func lowerDropout(l *lowerer, n *gorgonia.Node, d ops.Desc, in []int) (int, error) {
	if l.inference() {
		return in[0], nil
	}
	slot, err := l.randomSlot(n.Op(), n)
	if err != nil {
		return 0, err
	}
	y := l.out(n)
	return l.randomFwd(n, dropoutApply.instr(dropoutArgs(d.Random, elems(n), slot), []int{in[0], l.s.RNG, y}, []int{y})), nil
}

// lowerStochDepth: the branch or zeros in training. In inference it scales
// the branch by the survival probability, y = x*float32(survival) as the
// CPU rounds it: dropout_apply with threshold 0 keeps every element and
// multiplies it by its scale (the counter it reads, the training step's,
// does not matter then).
func lowerStochDepth(l *lowerer, n *gorgonia.Node, d ops.Desc, in []int) (int, error) {
	if l.inference() {
		if l.base.RNG < 0 {
			return 0, fmt.Errorf("the training step has no RNG buffer for %v", n.Op())
		}
		y := l.out(n)
		l.emit(dropoutApply.instr(DropoutArgs{N: elems(n), Scale: d.Random.Survival}, []int{in[0], l.shareBuf(l.base.RNG), y}, []int{y}), n)
		return y, nil
	}
	slot, err := l.randomSlot(n.Op(), n)
	if err != nil {
		return 0, err
	}
	y := l.out(n)
	return l.randomFwd(n, stochDepthApply.instr(stochDepthArgs(d.Random, elems(n), slot), []int{in[0], l.s.RNG, y}, []int{y})), nil
}
