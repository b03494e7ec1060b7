package cuda

import (
	"fmt"
	"math"
)

// Dynamic loss scaling of an fp16 step (PyTorch's GradScaler, on the
// device). Half's smallest subnormal is 2^-24, so the small gradients of a
// backward pass would round to zero in the half GEMM operands; the loss
// gradient is therefore multiplied by a scale S (2^16 at first) and every
// gradient of the backward pass is S times the true one. The optimizer
// then checks all parameter gradients for inf and NaN (grad_check, one
// launch over the packed gradient region), and sgd_scaled either skips
// its whole update (weights and velocities unchanged) when one was found,
// or divides the gradients by S and updates as sgd does. Last,
// loss_scale_update halves S after a skipped step and doubles it after
// Interval clean steps in a row (2000, GradScaler's default). S, the
// clean-step counter and the flags live in the arena (the Scaler buffer),
// so a captured CUDA graph replays the scaler with no host round trip.
//
// S is a power of two, so scaling is exact: the seed S (the loss seed is
// dL/dL = 1) gives ce_bwd's gradient S times the fp32 step's exactly,
// every fp32 operation of the backward pass is linear in the seed and so
// rounds the scaled values to exactly S times the unscaled ones, and
// multiplying by 1/S in sgd_scaled is exact. Only the half roundings of
// the GEMM operands see S: values that would fall below 2^-14 (where half
// loses precision) or 2^-24 (zero) are kept, and values over 65504
// overflow to infinity, which the check catches.
//
// What a skipped step leaves unchanged is what GradScaler's skipped
// optimizer.step() leaves unchanged: parameters and velocities, and the
// optimizer's "started" state (a step skipped before any update went
// through leaves the next one to initialise the velocities). Batch norm's
// running statistics are updated in the forward pass, as PyTorch's
// modules update them, and are not rolled back; the random ops' draw
// counters advance.

// Scaler buffer layout (float32 words; counts are exact integers below 2^24).
const (
	ScalerScale    = iota // S, a power of two
	ScalerGood            // clean steps since S last changed
	ScalerFound           // 1 while the current step's gradients hold an inf or NaN
	ScalerPending         // 1 while no update has gone through since the optimizer's first step
	ScalerInterval        // clean steps after which S doubles
	ScalerSkipped         // steps skipped since the buffer was written (for logs and tests)
	scalerLen
)

// LossScale configures the scaler of an fp16 step.
type LossScale struct {
	// Init is the initial scale, a power of two (0: 2^16).
	Init float64
	// Interval is the number of clean steps in a row after which the
	// scale doubles (0: 2000).
	Interval int
}

// DefaultLossScale is GradScaler's: 2^16, doubled after 2000 clean steps.
var DefaultLossScale = LossScale{Init: 1 << 16, Interval: 2000}

// MinLossScale is the smallest scale: halving stops there so that 1/S stays
// a finite float32.
const MinLossScale = 0x1p-126

// withDefaults fills the zero fields with DefaultLossScale's.
func (c LossScale) withDefaults() LossScale {
	if c.Init == 0 {
		c.Init = DefaultLossScale.Init
	}
	if c.Interval == 0 {
		c.Interval = DefaultLossScale.Interval
	}
	return c
}

// validate refuses a scale that is not a power of two in float32's range
// (the scaling would not be exact) or an interval below 1.
func (c LossScale) validate() error {
	if frac, _ := math.Frexp(c.Init); frac != 0.5 || c.Init < MinLossScale || c.Init > math.MaxFloat32 {
		return fmt.Errorf("loss scale %g: want a power of two from 2^-126 to 2^127", c.Init)
	}
	if c.Interval < 1 || c.Interval >= 1<<24 {
		return fmt.Errorf("loss scale growth interval %d: want 1 to 2^24-1", c.Interval)
	}
	return nil
}

// words is the Scaler buffer's initial contents.
func (c LossScale) words() []float32 {
	w := make([]float32, scalerLen)
	w[ScalerScale], w[ScalerInterval] = float32(c.Init), float32(c.Interval)
	return w
}

// SetLossScale configures the scaler of an fp16 step (before it is
// opened; Backend.Load and the executors write this initial state).
func (s *Step) SetLossScale(c LossScale) error {
	if !s.HasScaler() {
		return fmt.Errorf("cuda: a %s step has no loss scaler", s.Precision)
	}
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return fmt.Errorf("cuda: %w", err)
	}
	s.Bufs[s.Scaler].Init = c.words()
	return nil
}

// ScalerState is the state of the loss scaler as read back from its buffer.
type ScalerState struct {
	Scale   float64 // S
	Good    int     // clean steps since S last changed
	Pending bool    // no update has gone through since the optimizer's first step
	Skipped int     // steps skipped since the scaler was written
}

// ReadScaler decodes the Scaler buffer's words.
func ReadScaler(w []float32) ScalerState {
	return ScalerState{Scale: float64(w[ScalerScale]), Good: int(w[ScalerGood]), Pending: w[ScalerPending] != 0, Skipped: int(w[ScalerSkipped])}
}

// GradScale is the factor the step's gradients carry: S for an fp16 step
// (read through read, the executor's Read), else 1.
func (s *Step) GradScale(read func(id int) ([]float32, error)) (float64, error) {
	if !s.HasScaler() {
		return 1, nil
	}
	w, err := read(s.Scaler)
	if err != nil {
		return 0, err
	}
	return float64(w[ScalerScale]), nil
}

// NoArgs: a kernel of buffers only.
type NoArgs struct{}

func (*NoArgs) params() ([]*int, []*float64) { return nil, nil }

var (
	// gradients (the first of the packed region), scaler -> found flag
	gradCheck = defKernel("grad_check", 2, elemLaunch, func(r *Ref, in Instr, a ElemArgs, b [][]float32) {
		for _, g := range r.whole(in.Bufs[0])[:a.N] {
			if math.Float32bits(g)&0x7f800000 == 0x7f800000 {
				b[1][ScalerFound] = 1
				return
			}
		}
	})
	// parameters, gradients, velocities, hyper, scaler: sgd on the
	// unscaled gradients, or nothing when the step overflowed.
	sgdScaled = defKernel("sgd_scaled", 5, func(a SGDArgs) Dim { return gridStride(a.N) }, func(r *Ref, in Instr, a SGDArgs, b [][]float32) {
		sc := b[4]
		if sc[ScalerFound] != 0 {
			return
		}
		hyper := b[3]
		sgdUpdate(r, in, a, hyper[HyperLR], hyper[HyperFirst] != 0 || sc[ScalerPending] != 0, 1/sc[ScalerScale])
	})
	// hyper, scaler: the scale's update after the optimizer.
	lossScaleUpdate = defKernel("loss_scale_update", 2, func(NoArgs) Dim { return Dim{Grid: 1, Block: 1} }, func(_ *Ref, _ Instr, _ NoArgs, b [][]float32) {
		hyper, sc := b[0], b[1]
		if sc[ScalerFound] != 0 {
			sc[ScalerScale] = max(sc[ScalerScale]*0.5, MinLossScale)
			sc[ScalerGood] = 0
			sc[ScalerSkipped]++
			if hyper[HyperFirst] != 0 || sc[ScalerPending] != 0 {
				sc[ScalerPending] = 1
			}
		} else {
			good := sc[ScalerGood] + 1
			if good >= sc[ScalerInterval] {
				if s2 := sc[ScalerScale] * 2; s2 <= math.MaxFloat32 {
					sc[ScalerScale] = s2
				}
				good = 0
			}
			sc[ScalerGood] = good
			sc[ScalerPending] = 0
		}
		sc[ScalerFound] = 0
	})
)

// addScaler gives an fp16 training step its loss scaler.
func (l *lowerer) addScaler() {
	s := l.s
	if s.Precision != FP16 || l.inference() {
		return
	}
	s.Scaler = s.buf("lossscale", scalerLen, Hyper)
	s.Bufs[s.Scaler].Init = DefaultLossScale.words()
}

// lossSeed is the buffer ce_bwd reads the loss gradient from: the seed
// (dL/dL, the Const 1), or in a step with a loss scaler S itself, which is
// the seed times S.
func (l *lowerer) lossSeed(seed int) (int, error) {
	s := l.s
	if !s.HasScaler() {
		return seed, nil
	}
	if b := s.Bufs[seed]; b.Kind != Const || len(b.Init) != 1 || b.Init[0] != 1 {
		return 0, fmt.Errorf("loss scaling needs the loss gradient seed 1, the step has %s", b.Name)
	}
	return s.Scaler, nil
}

// emitScaledSGD is the optimizer of a step with a loss scaler: the check of
// every gradient, the scaled SGD runs, the scaler's update.
func (l *lowerer) emitScaledSGD(emitRuns func(sgd kernel[SGDArgs, *SGDArgs], extra ...int)) {
	s := l.s
	n := 0
	for _, sl := range s.Params {
		n += s.Bufs[sl.Grad].Elems
	}
	in := gradCheck.instr(ElemArgs{N: n}, []int{s.Params[0].Grad, s.Scaler}, []int{s.Scaler})
	in.Node = "loss scale: check the gradients"
	s.emit(in)
	emitRuns(sgdScaled, s.Scaler)
	in = lossScaleUpdate.instr(NoArgs{}, []int{s.Hyper, s.Scaler}, []int{s.Scaler})
	in.Node = "loss scale: update"
	s.emit(in)
}

// HasScaler reports whether the step is a training step with a loss
// scaler (an fp16 step lowered by Lower; a hand-made Step's zero Scaler
// is not one).
func (s *Step) HasScaler() bool { return s.Precision == FP16 && s.Base == nil && s.Scaler >= 0 }
