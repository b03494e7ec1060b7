package ops

import (
	"fmt"
	"github.com/eraserelu/eraserelu/graph/ops/cpu"
	"hash"
	"math"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ReLUOp is max(x, 0) as one node. The erase pass finds ReLUs by this type.
//
// When the memory plan allows it (the input's only reader is this op), the
// op rectifies its input in place and returns the input's tensor.
type ReLUOp struct {
	noCommon
	rank int
	id   uint64
	outBuf
	withEnv
	inPlace
	k32 reluKernel[float32]
	k64 reluKernel[float64]
}

// ReLU applies the rectifier to x.
func ReLU(x *gorgonia.Node) (*gorgonia.Node, error) {
	return gorgonia.ApplyOp(&ReLUOp{rank: x.Dims(), id: nextID()}, x)
}

// IsReLU reports whether n is a ReLU node of this library.
func IsReLU(n *gorgonia.Node) bool {
	_, ok := n.Op().(*ReLUOp)
	return ok
}

// InPlaceCandidates lists the inputs the op can write over (InPlacer).
func (op *ReLUOp) InPlaceCandidates() []int { return []int{0} }

func (op *ReLUOp) Arity() int { return 1 }
func (op *ReLUOp) Type() hm.Type {
	t := tensorType(op.rank, hm.TypeVariable('a'))
	return fnType(t, t)
}
func (op *ReLUOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	return clonedShape(in[0])
}
func (op *ReLUOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "ReLU%d#%d", op.rank, op.id) }
func (op *ReLUOp) Hashcode() uint32      { return hashOf(op) }
func (op *ReLUOp) String() string        { return "ReLU" }

func (op *ReLUOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "ReLU"
	if err := argCount(name, 1, vs); err != nil {
		return nil, err
	}
	x, err := argDense(name, 0, vs[0])
	if err != nil {
		return nil, err
	}
	y := x
	if !op.inPlace.on(0) {
		y = op.out.get(x.Dtype(), x.Shape()...)
	}
	if x.Dtype() == tensor.Float32 {
		op.k32 = reluKernel[float32]{y: y.Float32s(), x: x.Float32s(), simd: op.kern().k.simd()}
		cpu.ParallelRun(&op.k32, len(op.k32.x), 1)
		op.k32 = reluKernel[float32]{}
	} else {
		op.k64 = reluKernel[float64]{y: y.Float64s(), x: x.Float64s()}
		cpu.ParallelRun(&op.k64, len(op.k64.x), 1)
		op.k64 = reluKernel[float64]{}
	}
	return y, nil
}

// reluKernel writes y = x > 0 ? x : 0; y may be x. simd takes the AVX-512
// kernel for float32.
type reluKernel[T Float] struct {
	y, x []T
	simd bool
}

func (k *reluKernel[T]) RunRange(lo, hi int) {
	switch x := any(k.x).(type) {
	case []float32:
		if k.simd {
			simdReLU32(any(k.y).([]float32)[lo:hi], x[lo:hi])
			return
		}
		reluMask32(any(k.y).([]float32)[lo:hi], x[lo:hi], x[lo:hi])
	case []float64:
		reluMask64(any(k.y).([]float64)[lo:hi], x[lo:hi], x[lo:hi])
	}
}

// reluMask32 writes dst[i] = src[i] where sel[i] > 0, else +0, without a
// branch per element (a compare and a conditional move select an all-ones
// or all-zero mask): random signs would mispredict half the branches, which
// made the rectifier eight times slower than a copy. NaN selects 0, as
// "sel > 0" is false for it.
func reluMask32(dst, src, sel []float32) {
	src, sel = src[:len(dst)], sel[:len(dst)]
	for i, s := range sel {
		m := uint32(0)
		if s > 0 {
			m = ^uint32(0)
		}
		dst[i] = math.Float32frombits(math.Float32bits(src[i]) & m)
	}
}

// rectifyInPlace applies the rectifier to y in place, with the bits of
// ReLUOp's kernels.
func rectifyInPlace[T Float](y []T) {
	switch v := any(y).(type) {
	case []float32:
		reluMask32(v, v, v)
	case []float64:
		reluMask64(v, v, v)
	}
}

// reluGradInPlace masks dy in place by y > 0, with the bits of
// reluBackwardOp's kernels.
func reluGradInPlace[T Float](dy, y []T) {
	switch v := any(dy).(type) {
	case []float32:
		reluMask32(v, v, any(y).([]float32))
	case []float64:
		reluMask64(v, v, any(y).([]float64))
	}
}

// reluMask64 is reluMask32 for float64.
func reluMask64(dst, src, sel []float64) {
	src, sel = src[:len(dst)], sel[:len(dst)]
	for i, s := range sel {
		m := uint64(0)
		if s > 0 {
			m = ^uint64(0)
		}
		dst[i] = math.Float64frombits(math.Float64bits(src[i]) & m)
	}
}

func (op *ReLUOp) DiffWRT(int) []bool { return []bool{true} }
func (op *ReLUOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	dx, err := gorgonia.ApplyOp(&reluBackwardOp{rank: op.rank, id: nextID(), withEnv: op.withEnv}, output, grad)
	if err != nil {
		return nil, fmt.Errorf("ReLU backward: %w", err)
	}
	return gorgonia.Nodes{dx}, nil
}

// reluBackwardOp computes dx = dy * (y > 0) from the output y and its
// gradient dy; in place over dy when the memory plan allows it.
type reluBackwardOp struct {
	noCommon
	nonDiff
	rank int
	id   uint64
	outBuf
	withEnv
	inPlace
	k32 reluGradKernel[float32]
	k64 reluGradKernel[float64]
}

// InPlaceCandidates lists the inputs the op can write over (InPlacer).
func (op *reluBackwardOp) InPlaceCandidates() []int { return []int{1} }

func (op *reluBackwardOp) Arity() int { return 2 }
func (op *reluBackwardOp) Type() hm.Type {
	t := tensorType(op.rank, hm.TypeVariable('a'))
	return fnType(t, t, t)
}
func (op *reluBackwardOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	return clonedShape(in[0])
}
func (op *reluBackwardOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "ReLUBackward%d#%d", op.rank, op.id) }
func (op *reluBackwardOp) Hashcode() uint32      { return hashOf(op) }
func (op *reluBackwardOp) String() string        { return "ReLUBackward" }

func (op *reluBackwardOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "ReLUBackward"
	args, err := floatArgs(name, 2, vs)
	if err != nil {
		return nil, err
	}
	y, dy := args[0], args[1]
	if y.Size() != dy.Size() {
		return nil, fmt.Errorf("%s: y has shape %v, dy %v", name, y.Shape(), dy.Shape())
	}
	dx := dy
	if !op.inPlace.on(1) {
		dx = op.out.get(y.Dtype(), y.Shape()...)
	}
	if y.Dtype() == tensor.Float32 {
		op.k32 = reluGradKernel[float32]{dx: dx.Float32s(), y: y.Float32s(), dy: dy.Float32s(), simd: op.kern().k.simd()}
		cpu.ParallelRun(&op.k32, len(op.k32.y), 1)
		op.k32 = reluGradKernel[float32]{}
	} else {
		op.k64 = reluGradKernel[float64]{dx: dx.Float64s(), y: y.Float64s(), dy: dy.Float64s()}
		cpu.ParallelRun(&op.k64, len(op.k64.y), 1)
		op.k64 = reluGradKernel[float64]{}
	}
	return dx, nil
}

// reluGradKernel writes dx = y > 0 ? dy : 0; dx may be dy. simd takes the
// AVX-512 kernel for float32.
type reluGradKernel[T Float] struct {
	dx, y, dy []T
	simd      bool
}

func (k *reluGradKernel[T]) RunRange(lo, hi int) {
	switch y := any(k.y).(type) {
	case []float32:
		if k.simd {
			simdReLUGrad32(any(k.dx).([]float32)[lo:hi], y[lo:hi], any(k.dy).([]float32)[lo:hi])
			return
		}
		reluMask32(any(k.dx).([]float32)[lo:hi], any(k.dy).([]float32)[lo:hi], y[lo:hi])
	case []float64:
		reluMask64(any(k.dx).([]float64)[lo:hi], any(k.dy).([]float64)[lo:hi], y[lo:hi])
	}
}
