package cuda

import "fmt"

// BufKind says where a buffer lives and how long.
type BufKind int

const (
	// Activation: written by one instruction, read by later ones, dead after
	// its last reader; packed with others by liveness.
	Activation BufKind = iota
	// Scratch: an instruction's private workspace (im2col columns, partial
	// sums), live only during that instruction.
	Scratch
	// Param: a trainable parameter, device-resident across steps.
	Param
	// Grad: the gradient of a parameter; its own region, in parameter order,
	// so the optimizer updates all of them with few launches.
	Grad
	// Velocity: the SGD momentum buffer of a parameter (same order as Grad).
	Velocity
	// State: batch-norm running statistics and similar op state.
	State
	// Input: the batch (images, int32 labels), copied in each step.
	Input
	// Const: a value fixed at lowering time (the loss seed dL/dL = 1).
	Const
	// Metrics: loss and classification counts, copied back each step.
	Metrics
	// Hyper: per-step hyper-parameters of the optimizer (learning rate, first-step flag).
	Hyper
)

var kindNames = [...]string{"activation", "scratch", "param", "grad", "velocity", "state", "input", "const", "metrics", "hyper"}

func (k BufKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("BufKind(%d)", int(k))
}

// Persistent reports whether a buffer of this kind keeps its contents
// across steps (and so is never shared with another buffer).
func (k BufKind) Persistent() bool { return k != Activation && k != Scratch }

// ElemSize is the size of every element: float32, or int32 for labels.
const ElemSize = 4

// Buf is one device tensor of the step.
type Buf struct {
	Name  string
	Elems int
	Kind  BufKind
	Int   bool // int32 elements (labels)
	// Double: float64 values stored as pairs of 4-byte elements (partial
	// sums of the channel reductions); compare with Float64At, not as floats.
	Double bool
	Init   []float32 // initial contents of a Const buffer
	// Set by Plan:
	Offset      int64 // bytes from the arena base
	First, Last int   // instruction indices of the first write and last read (-1: persistent)
}

// Bytes is the size of the buffer.
func (b *Buf) Bytes() int64 { return int64(b.Elems) * ElemSize }

// Instr is one kernel launch (or one cuBLAS GEMM, Kernel "gemm") with its
// integer and float arguments and its buffers, in the kernel's parameter
// order (see Kernels).
type Instr struct {
	Kernel string
	Ints   []int
	Floats []float64
	Bufs   []int // buffer ids
	Writes []int // the subset of Bufs the instruction writes (for liveness)
	Node   string
}

func (in Instr) String() string {
	return fmt.Sprintf("%s ints=%v floats=%v bufs=%v (%s)", in.Kernel, in.Ints, in.Floats, in.Bufs, in.Node)
}

// ParamSlot ties a parameter to its buffers.
type ParamSlot struct {
	Name             string
	Param, Grad, Vel int
	NoDecay          bool
}

// Step is a lowered training step: forward, loss, backward and the SGD
// update as one instruction list over planned buffers.
type Step struct {
	Bufs   []*Buf
	Instrs []Instr
	// Backward ends before Instrs[OptStart:], the optimizer update.
	OptStart int
	Params   []ParamSlot
	// Named buffers the host reads or writes.
	X, Y, Loss, Logits, Metrics, Hyper int
	// Running statistics: buffer id of each state tensor, by its graph name.
	States map[string]int
	// ArenaBytes is the planned size of the whole device arena.
	ArenaBytes int64
	// Batch and Classes of the graph.
	Batch, Classes int
	SGD            SGDConfig
	// NoShare gives every transient buffer its own memory (for debugging
	// the planner: a result that changes with it is a liveness bug).
	NoShare bool
	// NodeBufs maps each lowered graph node to its buffer (for debugging).
	NodeBufs map[any]int
}

// SGDConfig is the optimizer the step applies (PyTorch's SGD; see train.SGD).
type SGDConfig struct {
	Momentum, Dampening, WeightDecay float64
	Nesterov                         bool
}

// Metrics layout (floats in the Metrics buffer).
const (
	MetricLoss = iota
	MetricCount
	MetricTop1
	MetricTop5
	metricsLen
)

// Hyper layout.
const (
	HyperLR    = iota
	HyperFirst // 1 on the first step (velocity := gradient), else 0
	hyperLen
)

func (s *Step) buf(name string, elems int, kind BufKind) int {
	s.Bufs = append(s.Bufs, &Buf{Name: name, Elems: elems, Kind: kind, First: -1, Last: -1})
	return len(s.Bufs) - 1
}

func (s *Step) emit(in Instr) { s.Instrs = append(s.Instrs, in) }
