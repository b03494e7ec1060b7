package train

import (
	"fmt"
	"strings"
)

// Point is where training stands when a step is about to be taken: Iter
// optimizer steps have been taken so far, and the step belongs to the
// 0-based epoch Epoch.
type Point struct {
	Iter  int
	Epoch int
}

// A Schedule gives the learning rate of the step at a point. Schedules are
// pure functions of the point, so a resumed run follows the same rates.
// They compose: each constructor below wraps a base schedule.
type Schedule interface {
	LR(p Point) float64
}

// ScheduleFunc adapts a function to Schedule.
type ScheduleFunc func(Point) float64

// LR calls f.
func (f ScheduleFunc) LR(p Point) float64 { return f(p) }

// Unit says whether a schedule counts epochs or iterations.
type Unit int

const (
	// Epochs counts completed epochs (PyTorch's MultiStepLR stepped once per epoch).
	Epochs Unit = iota
	// Iterations counts optimizer steps (He et al.'s "32k and 48k iterations").
	Iterations
)

func (u Unit) String() string {
	if u == Iterations {
		return "iteration"
	}
	return "epoch"
}

// ParseUnit reads "epoch" or "iteration" (plural and short forms accepted).
func ParseUnit(s string) (Unit, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "epoch", "epochs", "e":
		return Epochs, nil
	case "iteration", "iterations", "iter", "iters", "step", "steps", "i":
		return Iterations, nil
	}
	return 0, fmt.Errorf("unit %q: want epoch or iteration", s)
}

func (u Unit) of(p Point) int {
	if u == Iterations {
		return p.Iter
	}
	return p.Epoch
}

// Constant is a fixed learning rate.
func Constant(lr float64) Schedule {
	return ScheduleFunc(func(Point) float64 { return lr })
}

// MultiStep multiplies base by gamma once for every milestone reached: with
// milestones 81 and 122 (epochs), epochs 0-80 run at base, 81-121 at
// base*gamma, 122 on at base*gamma^2 (PyTorch's MultiStepLR).
func MultiStep(base Schedule, unit Unit, gamma float64, milestones ...int) Schedule {
	ms := append([]int(nil), milestones...)
	return ScheduleFunc(func(p Point) float64 {
		lr, at := base.LR(p), unit.of(p)
		for _, m := range ms {
			if at >= m {
				lr *= gamma
			}
		}
		return lr
	})
}

// StepEvery multiplies base by gamma every period units: lr * gamma^(t/period)
// (PyTorch's StepLR; the ImageNet recipe's /10 every 30 epochs).
func StepEvery(base Schedule, unit Unit, gamma float64, period int) Schedule {
	return ScheduleFunc(func(p Point) float64 {
		lr := base.LR(p)
		if period <= 0 {
			return lr
		}
		for range unit.of(p) / period {
			lr *= gamma
		}
		return lr
	})
}

// Exponential multiplies base by gamma once per unit: lr * gamma^t
// (PyTorch's ExponentialLR / MultiplicativeLR with a constant factor).
func Exponential(base Schedule, unit Unit, gamma float64) Schedule {
	return ScheduleFunc(func(p Point) float64 {
		lr := base.LR(p)
		for range unit.of(p) {
			lr *= gamma
		}
		return lr
	})
}

// Scale multiplies base by a constant factor.
func Scale(base Schedule, factor float64) Schedule {
	return ScheduleFunc(func(p Point) float64 { return base.LR(p) * factor })
}

// Warmup runs the first iters iterations at lr and then follows base: He
// et al. train ResNet-110 at 0.01 "until the training error is below 80%
// (about 400 iterations)" and then go back to 0.1; here the warm-up is that
// fixed number of iterations, so a schedule stays a function of the point.
func Warmup(base Schedule, iters int, lr float64) Schedule {
	return ScheduleFunc(func(p Point) float64 {
		if p.Iter < iters {
			return lr
		}
		return base.LR(p)
	})
}
