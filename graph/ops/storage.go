package ops

import (
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// This file is the ops' side of the memory plan that graph.Compile makes
// (graph/plan.go): where an op's output lives. The plan decides, the ops
// obey: an op writes over one of its inputs when told (InPlacer), its
// output buffer lives in storage shared with other ops when given a Slot
// (OutputOwner), and an op that takes an input only to be ordered after it
// says so (OrderOnly), so that the plan does not keep that input alive.

// OutputOwner is implemented by ops whose value is their output buffer (or,
// in place, the storage of one of their inputs): every op of this library
// but Pin and the loss.
type OutputOwner interface {
	// UseSlot makes the op's output buffer live in s; nil gives it storage
	// of its own.
	UseSlot(s *Slot)
}

// outBuf is the output buffer of an op, embedded so that op.out reaches it
// and the op is an OutputOwner.
type outBuf struct{ out buffer }

// UseSlot makes the op's output live in s (OutputOwner).
func (o *outBuf) UseSlot(s *Slot) { o.out.slot = s }

// InPlacer is implemented by element-wise ops that can write their output
// over one of their inputs.
type InPlacer interface {
	OutputOwner
	// InPlaceCandidates lists the inputs the op can write over, preferred
	// first.
	InPlaceCandidates() []int
	// SetInPlace makes the op write over input i; -1: into its own buffer.
	SetInPlace(i int)
}

// inPlace is an InPlacer's decision, embedded.
type inPlace struct{ input int8 }

// SetInPlace makes the op write over input i, or not when i < 0 (InPlacer).
func (p *inPlace) SetInPlace(i int) { p.input = int8(max(i, -1)) + 1 }

// on reports whether the op writes over input i.
func (p *inPlace) on(i int) bool { return int(p.input) == i+1 }

// OrderOnly is implemented by ops that take some inputs only to run after
// them, never reading their values.
type OrderOnly interface{ OrdersOnly(i int) bool }

// OutputRectifier is implemented by ops that can apply the rectifier to
// their output as they write it (batch norm, add). graph.Compile turns it
// on when the ReLU that reads the op's output runs in place over it in the
// training machine (ops.Kernels.TrainingFusion), and that machine then
// skips the ReLU: one pass over the activation less, the same bits. The
// inference machine still runs the ReLU (rectifying twice changes nothing).
type OutputRectifier interface {
	RectifyOutput(on bool)
}

// rectifier is an OutputRectifier's decision, embedded.
type rectifier struct{ rectify bool }

// RectifyOutput makes the op rectify its output (OutputRectifier).
func (r *rectifier) RectifyOutput(on bool) { r.rectify = on }

// Slot is storage shared by the output buffers of several ops whose values
// are never alive at the same time.
type Slot struct {
	f32 []float32
	f64 []float64
	gen uint64 // bumped whenever the storage is reallocated
}

// NewSlot allocates a slot of size elements of dt (float32 or float64), so
// that runs never grow it.
func NewSlot(dt tensor.Dtype, size int) *Slot {
	s := &Slot{gen: 1}
	switch dt {
	case tensor.Float32:
		s.f32 = make([]float32, size)
	case tensor.Float64:
		s.f64 = make([]float64, size)
	}
	return s
}

// Inputs are the argument nodes of n in order.
func Inputs(n *gorgonia.Node) []*gorgonia.Node {
	it := n.Graph().From(n.ID())
	out := make([]*gorgonia.Node, 0, it.Len())
	for it.Next() {
		out = append(out, it.Node().(*gorgonia.Node))
	}
	return out
}
