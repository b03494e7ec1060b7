package ops

import "sync/atomic"

// Mode is the training/inference switch shared by every op of one graph
// whose behaviour differs between the two (batch norm, dropout, stochastic
// depth). It lives outside the ops so that switching never needs a rebuild
// or recompile, and so the running statistics of batch norm are untouched by it.
type Mode struct{ training atomic.Bool }

// NewMode returns a Mode in training mode.
func NewMode() *Mode {
	m := &Mode{}
	m.training.Store(true)
	return m
}

// Training reports whether ops run in training mode.
func (m *Mode) Training() bool { return m.training.Load() }

// SetTraining switches between training (true) and inference (false).
func (m *Mode) SetTraining(on bool) { m.training.Store(on) }
