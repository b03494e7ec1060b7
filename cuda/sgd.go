package cuda

import "fmt"

// SGDArgs: an update of N consecutive parameters (one run of a decay
// class) by PyTorch's SGD; Nesterov and Decay are 0 or 1; Keep is
// 1 - dampening. The learning rate and the first-step flag are read from
// the Hyper buffer, so a captured step replays with new values.
type SGDArgs struct {
	N, Nesterov, Decay          int
	Momentum, Keep, WeightDecay float64
}

func (a *SGDArgs) params() ([]*int, []*float64) {
	return []*int{&a.N, &a.Nesterov, &a.Decay}, []*float64{&a.Momentum, &a.Keep, &a.WeightDecay}
}

// buffers: parameters, gradients, velocities (each the first of the run),
// hyper-parameters.
var sgdKernel = defKernel("sgd", 4, func(a SGDArgs) Dim { return gridStride(a.N) }, refSGD)

func refSGD(r *Ref, in Instr, a SGDArgs, b [][]float32) {
	hyper := b[3]
	sgdUpdate(r, in, a, hyper[HyperLR], hyper[HyperFirst] != 0, 1)
}

// sgdUpdate is the update of sgd and sgd_scaled: the gradients are
// multiplied by unscale (exact: 1, or the inverse of a power-of-two loss
// scale) before anything else.
func sgdUpdate(r *Ref, in Instr, a SGDArgs, lr float32, first bool, unscale float32) {
	n, nesterov, decay := a.N, a.Nesterov != 0, a.Decay != 0
	mom, keep, wd := float32(a.Momentum), float32(a.Keep), float32(a.WeightDecay)
	w, g, vel := r.whole(in.Bufs[0])[:n], r.whole(in.Bufs[1])[:n], r.whole(in.Bufs[2])[:n]
	for i := range w {
		gi := g[i] * unscale
		if decay {
			gi = gi + float32(wd*w[i])
		}
		d := gi
		if mom != 0 {
			var vi float32
			if first {
				vi = gi
			} else {
				vi = float32(mom*vel[i]) + float32(keep*gi)
			}
			vel[i] = vi
			if nesterov {
				d = gi + float32(mom*vi)
			} else {
				d = vi
			}
		}
		w[i] = w[i] + float32(-lr*d)
	}
}

// emitSGD updates runs of consecutive parameters of one decay class with
// one launch each: Plan packs parameters, gradients and velocities in slot
// order without gaps, so a run is contiguous in all three regions. A step
// with a loss scaler updates through it (emitScaledSGD).
func (l *lowerer) emitSGD() {
	if l.s.HasScaler() {
		l.emitScaledSGD(l.emitSGDRuns)
		return
	}
	l.emitSGDRuns(sgdKernel)
}

// emitSGDRuns emits kernel k for each run; extra buffers follow the
// hyper-parameters.
func (l *lowerer) emitSGDRuns(k kernel[SGDArgs, *SGDArgs], extra ...int) {
	s := l.s
	o := s.SGD
	for _, run := range s.SGDRuns() {
		first, last := s.Params[run[0]], s.Params[run[len(run)-1]]
		n := 0
		for _, i := range run {
			n += s.Bufs[s.Params[i].Param].Elems
		}
		decay := 0
		if !first.NoDecay && o.WeightDecay != 0 {
			decay = 1
		}
		in := k.instr(SGDArgs{N: n, Nesterov: b2i(o.Nesterov), Decay: decay, Momentum: o.Momentum, Keep: 1 - o.Dampening, WeightDecay: o.WeightDecay},
			append([]int{first.Param, first.Grad, first.Vel, s.Hyper}, extra...), []int{first.Param, first.Vel})
		in.Node = fmt.Sprintf("sgd %s..%s", first.Name, last.Name)
		s.emit(in)
	}
}

// SGDRuns lists, for each sgd instruction, the slots it covers (for Plan
// and tests).
func (s *Step) SGDRuns() [][]int {
	var runs [][]int
	for i := 0; i < len(s.Params); {
		j := i
		var r []int
		for j < len(s.Params) && s.Params[j].NoDecay == s.Params[i].NoDecay {
			r = append(r, j)
			j++
		}
		runs = append(runs, r)
		i = j
	}
	return runs
}
