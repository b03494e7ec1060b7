package train

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/eraserelu/eraserelu/graph"
	"gorgonia.org/tensor"
)

// SGDOptions are the hyper-parameters of stochastic gradient descent other
// than the learning rate, which each Step takes (it follows the schedule).
type SGDOptions struct {
	Momentum    float64
	Dampening   float64
	WeightDecay float64
	Nesterov    bool
}

// Validate checks the options as PyTorch's SGD does.
func (o SGDOptions) Validate() error {
	var errs []error
	if !(o.Momentum >= 0) {
		errs = append(errs, fmt.Errorf("momentum must be >= 0, got %v", o.Momentum))
	}
	if !(o.Dampening >= 0 && o.Dampening <= 1) {
		errs = append(errs, fmt.Errorf("dampening must be in [0, 1], got %v", o.Dampening))
	}
	if !(o.WeightDecay >= 0) {
		errs = append(errs, fmt.Errorf("weight_decay must be >= 0, got %v", o.WeightDecay))
	}
	if o.Nesterov && (o.Momentum <= 0 || o.Dampening != 0) {
		errs = append(errs, fmt.Errorf("nesterov requires momentum > 0 and dampening 0, got momentum %v and dampening %v", o.Momentum, o.Dampening))
	}
	return errors.Join(errs...)
}

// GradSource gives the gradient of the loss with respect to a parameter
// after a training pass; *graph.Program is one.
type GradSource interface {
	Grad(p *graph.Param) (*tensor.Dense, error)
}

// SGD is stochastic gradient descent with PyTorch's semantics exactly
// (torch.optim.SGD): for each parameter w with gradient g,
//
//	g' = g + wd*w                 (unless the parameter is NoDecay)
//	v  = g'                        on the first step,
//	v  = momentum*v + (1-dampening)*g'   afterwards
//	d  = g' + momentum*v          with Nesterov momentum, else d = v
//	w  = w - lr*d
//
// and with momentum 0 simply d = g'. The arithmetic is done in the
// parameter's own type (float32 or float64), as PyTorch does.
//
// Velocity buffers are allocated once, in NewSGD; a step allocates nothing.
// Parameters are split into chunks that a fixed pool of goroutines updates in
// parallel when the model is large enough; each element is updated by the
// same expression whatever the split, so results do not depend on the number
// of cores. Close stops the pool.
type SGD struct {
	*sgdState
}

type sgdState struct {
	opts    SGDOptions
	params  []*graph.Param
	vel     []*tensor.Dense
	w, g    []*tensor.Dense // this step's values and gradients
	chunks  []sgdChunk
	total   int
	started bool
	lr      float64

	poolOnce sync.Once
	jobs     chan int
	wg       sync.WaitGroup
	workers  int
	closed   bool
}

type sgdChunk struct{ param, lo, hi int }

// sgdGrain is the largest chunk one goroutine updates at a time, and
// sgdParallelMin the least total size worth the pool.
const (
	sgdGrain       = 1 << 15
	sgdParallelMin = 1 << 16
)

// NewSGD returns an optimizer for params with zeroed velocity buffers.
func NewSGD(params []*graph.Param, o SGDOptions) (*SGD, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("sgd: %w", err)
	}
	s := &sgdState{
		opts:    o,
		params:  append([]*graph.Param(nil), params...),
		vel:     make([]*tensor.Dense, len(params)),
		w:       make([]*tensor.Dense, len(params)),
		g:       make([]*tensor.Dense, len(params)),
		workers: runtime.GOMAXPROCS(0),
	}
	seen := map[string]bool{}
	for i, p := range params {
		if seen[p.Name] {
			return nil, fmt.Errorf("sgd: parameter %q appears twice", p.Name)
		}
		seen[p.Name] = true
		w, err := paramValue(p)
		if err != nil {
			return nil, fmt.Errorf("sgd: %w", err)
		}
		s.vel[i] = tensor.New(tensor.Of(w.Dtype()), tensor.WithShape(w.Shape().Clone()...))
		n := w.Size()
		s.total += n
		for lo := 0; lo < n; lo += sgdGrain {
			s.chunks = append(s.chunks, sgdChunk{param: i, lo: lo, hi: min(lo+sgdGrain, n)})
		}
	}
	opt := &SGD{s}
	runtime.AddCleanup(opt, func(s *sgdState) { s.stop() }, s)
	return opt, nil
}

func paramValue(p *graph.Param) (*tensor.Dense, error) {
	w, ok := p.Node.Value().(*tensor.Dense)
	if !ok || w == nil {
		return nil, fmt.Errorf("parameter %s has value %T, not a dense tensor", p.Name, p.Node.Value())
	}
	if w.Dtype() != tensor.Float32 && w.Dtype() != tensor.Float64 {
		return nil, fmt.Errorf("parameter %s has dtype %v, want float32 or float64", p.Name, w.Dtype())
	}
	return w, nil
}

// Options returns the hyper-parameters.
func (s *SGD) Options() SGDOptions { return s.opts }

// Params lists the optimised parameters in order.
func (s *SGD) Params() []*graph.Param { return s.params }

// Velocity is the momentum buffer of the named parameter.
func (s *SGD) Velocity(name string) (*tensor.Dense, bool) {
	for i, p := range s.params {
		if p.Name == name {
			return s.vel[i], true
		}
	}
	return nil, false
}

// Started reports whether a step has been taken (PyTorch initialises the
// velocity with the first gradient, so the first step differs when
// dampening is non-zero). Checkpoints save it.
func (s *SGD) Started() bool { return s.started }

// SetStarted restores Started from a checkpoint.
func (s *SGD) SetStarted(v bool) { s.started = v }

// Step updates every parameter in place with the gradients from src, and
// zeroes the gradients as it reads them (PyTorch's zero_grad is part of the
// step): graph.Program overwrites its pinned gradients every pass anyway,
// but a source backed by Gorgonia's dual values adds each pass to the last.
func (s *SGD) Step(src GradSource, lr float64) error {
	if s.closed {
		return errors.New("sgd: step after Close")
	}
	for i, p := range s.params {
		g, err := src.Grad(p)
		if err != nil {
			return fmt.Errorf("sgd step: %w", err)
		}
		w, err := paramValue(p)
		if err != nil {
			return fmt.Errorf("sgd step: %w", err)
		}
		if g.Dtype() != w.Dtype() || g.Size() != w.Size() || w.Size() != s.vel[i].Size() {
			return fmt.Errorf("sgd step: parameter %s is %v of %d elements, its gradient %v of %d (velocity %d)",
				p.Name, w.Dtype(), w.Size(), g.Dtype(), g.Size(), s.vel[i].Size())
		}
		s.w[i], s.g[i] = w, g
	}
	s.lr = lr
	if s.workers > 1 && s.total >= sgdParallelMin && len(s.chunks) > 1 {
		s.parallel()
	} else {
		for c := range s.chunks {
			s.run(c)
		}
	}
	s.started = true
	return nil
}

func (s *sgdState) parallel() {
	s.poolOnce.Do(func() {
		s.jobs = make(chan int, len(s.chunks))
		for range s.workers - 1 {
			go func() {
				for c := range s.jobs {
					s.run(c)
					s.wg.Done()
				}
			}()
		}
	})
	s.wg.Add(len(s.chunks))
	for c := range s.chunks {
		s.jobs <- c
	}
	// The calling goroutine works too, until the queue is empty.
	for {
		select {
		case c := <-s.jobs:
			s.run(c)
			s.wg.Done()
			continue
		default:
		}
		break
	}
	s.wg.Wait()
}

func (s *sgdState) run(c int) {
	ch := s.chunks[c]
	p := s.params[ch.param]
	wd := s.opts.WeightDecay
	if p.NoDecay {
		wd = 0
	}
	first := !s.started
	switch s.w[ch.param].Dtype() {
	case tensor.Float32:
		sgdKernel(s.w[ch.param].Float32s()[ch.lo:ch.hi], s.g[ch.param].Float32s()[ch.lo:ch.hi], s.vel[ch.param].Float32s()[ch.lo:ch.hi],
			float32(s.lr), float32(s.opts.Momentum), float32(1-s.opts.Dampening), float32(wd), s.opts.Nesterov, first)
	default:
		sgdKernel(s.w[ch.param].Float64s()[ch.lo:ch.hi], s.g[ch.param].Float64s()[ch.lo:ch.hi], s.vel[ch.param].Float64s()[ch.lo:ch.hi],
			s.lr, s.opts.Momentum, 1-s.opts.Dampening, wd, s.opts.Nesterov, first)
	}
}

// sgdKernel is one SGD step over a slice, keep = 1-dampening, zeroing g; every rounding
// matches PyTorch's sequence of tensor operations (add with alpha, mul_, add_),
// and the conversions forbid fused multiply-adds.
func sgdKernel[T float32 | float64](w, g, v []T, lr, mom, keep, wd T, nesterov, first bool) {
	g, v = g[:len(w)], v[:len(w)]
	for i := range w {
		d := g[i]
		g[i] = 0
		if wd != 0 {
			d = T(d + T(wd*w[i]))
		}
		if mom != 0 {
			var b T
			if first {
				b = d
			} else {
				b = T(T(mom*v[i]) + T(keep*d))
			}
			v[i] = b
			if nesterov {
				d = T(d + T(mom*b))
			} else {
				d = b
			}
		}
		w[i] = T(w[i] + T(-lr*d))
	}
}

// Close stops the worker pool. The optimizer cannot step afterwards.
func (s *SGD) Close() { s.stop() }

func (s *sgdState) stop() {
	if s.closed {
		return
	}
	s.closed = true
	s.poolOnce.Do(func() {}) // no pool may start after this
	if s.jobs != nil {
		close(s.jobs)
	}
}
