package cuda

import (
	endian "encoding/binary"
	"fmt"
	"math"

	"github.com/eraserelu/eraserelu/train"
)

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

// ElemSize is the size of an element: float32, or int32 for labels (bf16
// buffers have elements of BF16Bytes).
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
	// BF16: bfloat16 elements, two bytes each (the GEMM operands of a
	// bf16 step, bf16.go).
	BF16 bool
	Init []float32 // initial contents of a Const buffer
	// Set by Plan:
	Offset      int64 // bytes from the arena base
	First, Last int   // instruction indices of the first write and last read (-1: persistent)
}

// Bytes is the size of the buffer.
func (b *Buf) Bytes() int64 {
	if b.BF16 {
		return int64(b.Elems) * BF16Bytes
	}
	return int64(b.Elems) * ElemSize
}

// Words is the number of 4-byte words the buffer covers: what Read returns
// and Write takes (its elements, or a bf16 buffer's elements two to a word).
func (b *Buf) Words() int { return int((b.Bytes() + ElemSize - 1) / ElemSize) }

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
// update as one instruction list over planned buffers; or (LowerInference)
// an inference pass over the buffers of a training step, its Base.
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
	SGD            train.SGDOptions
	// Precision the step was lowered with: FP32, or BF16 (GEMMs on bf16
	// operands, bf16.go).
	Precision Precision
	// DirectConv: the stride-1 3x3 convolutions conv_direct can take run
	// without column buffers (Lowering.DirectConv, convdirect.go).
	DirectConv bool
	// NoShare gives every transient buffer its own memory (for debugging
	// the planner: a result that changes with it is a liveness bug).
	NoShare bool
	// NodeBufs maps each lowered graph node to its buffer (for debugging,
	// and for LowerInference to find the training step's buffers).
	NodeBufs map[any]int
	// RNG is the Hyper buffer of the random ops' draw counters (-1 when
	// the step has no random op): counter i, the number of masks op
	// Randoms[i] has drawn, is a uint64 in elements 2i (low word) and 2i+1.
	// The step's last backward instruction (rng_advance) increments every
	// counter on the device, so a replayed CUDA graph draws new masks.
	RNG     int
	Randoms []RandomOp
	// Base is the training step whose arena an inference step runs in
	// (nil for a training step). Shared maps each of the inference step's
	// persistent buffers (parameters, running statistics, the batch, the
	// metrics) to the Base buffer it is: Plan gives it the same offset.
	Base   *Step
	Shared map[int]int
}

// StepMetrics are the loss and counts of one step (the Metrics buffer).
type StepMetrics struct {
	Loss              float64
	Count, Top1, Top5 int
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

// RandomOp is a random op of the step (dropout, stochastic depth): its
// masks are a hash of its seed and its draw counter, which lives on the
// device in the RNG buffer while the step runs there.
type RandomOp struct {
	Name string // the op's node
	Op   RNGStater
}

// RNGStater is the draw counter of a random op of graph/ops (train.RNGStater).
type RNGStater interface {
	RNGState() ([]byte, error)
	SetRNGState([]byte) error
}

// RNGState is the contents of the RNG buffer for the ops' current draw
// counters: what the host writes before the first step (a fresh arena is
// zero: right only for ops that have drawn nothing) and after a resume.
func (s *Step) RNGState() ([]float32, error) {
	out := make([]float32, 2*len(s.Randoms))
	for i, r := range s.Randoms {
		b, err := r.Op.RNGState()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.Name, err)
		}
		if len(b) != 8 {
			return nil, fmt.Errorf("%s: RNG state of %d bytes, want 8", r.Name, len(b))
		}
		putU64(out, i, endian.LittleEndian.Uint64(b))
	}
	return out, nil
}

// SetRNGState sets the ops' draw counters from the contents of the RNG
// buffer read back from the device (before a checkpoint, or to continue on
// the CPU).
func (s *Step) SetRNGState(v []float32) error {
	if len(v) != 2*len(s.Randoms) {
		return fmt.Errorf("RNG buffer of %d elements, the step has %d counters", len(v), len(s.Randoms))
	}
	for i, r := range s.Randoms {
		if err := r.Op.SetRNGState(endian.LittleEndian.AppendUint64(nil, getU64(v, i))); err != nil {
			return fmt.Errorf("%s: %w", r.Name, err)
		}
	}
	return nil
}

// getU64 and putU64 access element i of a uint64 array stored in float32
// words (low word first, as on the little-endian device); getF64 and
// putF64 likewise for float64 (the saved layer-norm statistics).
func getU64(v []float32, i int) uint64 {
	return uint64(math.Float32bits(v[2*i])) | uint64(math.Float32bits(v[2*i+1]))<<32
}

func putU64(v []float32, i int, x uint64) {
	v[2*i], v[2*i+1] = math.Float32frombits(uint32(x)), math.Float32frombits(uint32(x>>32))
}

func getF64(v []float32, i int) float64    { return math.Float64frombits(getU64(v, i)) }
func putF64(v []float32, i int, x float64) { putU64(v, i, math.Float64bits(x)) }
