package ops

import (
	"fmt"
	"github.com/eraserelu/eraserelu/graph/ops/cpu"
	"hash"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// AddOp is the elementwise sum of two tensors of the same shape, as one
// node: the merge of a residual block (shortcut + branch). Its gradient
// passes dy to both inputs unchanged.
//
// When the memory plan allows it, the op adds in place into whichever input
// nothing else reads (in a residual block, usually the branch).
type AddOp struct {
	noCommon
	rank int
	id   uint64
	outBuf
	withEnv
	inPlace
	rectifier
	k32 resAddArgs[float32]
	k64 resAddArgs[float64]
}

// InPlaceCandidates lists the inputs the op can write over (InPlacer).
func (op *AddOp) InPlaceCandidates() []int { return []int{1, 0} }

// Add returns a + b; a and b must have the same shape (no broadcasting).
func Add(a, b *gorgonia.Node) (*gorgonia.Node, error) {
	if !a.Shape().Eq(b.Shape()) {
		return nil, fmt.Errorf("ops.Add: shapes %v and %v differ", a.Shape(), b.Shape())
	}
	if a.Dims() == 0 {
		return nil, fmt.Errorf("ops.Add: scalar inputs")
	}
	n, err := gorgonia.ApplyOp(&AddOp{rank: a.Dims(), id: nextID()}, a, b)
	if err != nil {
		return nil, fmt.Errorf("ops.Add: %w", err)
	}
	return n, nil
}

// IsAdd reports whether n is a residual-add node of this library.
func IsAdd(n *gorgonia.Node) bool {
	_, ok := n.Op().(*AddOp)
	return ok
}

func (op *AddOp) Arity() int { return 2 }
func (op *AddOp) Type() hm.Type {
	t := tensorType(op.rank, hm.TypeVariable('a'))
	return fnType(t, t, t)
}
func (op *AddOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	a, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	b, err := shapeOf(in[1])
	if err != nil {
		return nil, err
	}
	if !a.Eq(b) {
		return nil, fmt.Errorf("Add: shapes %v and %v differ", a, b)
	}
	return a.Clone(), nil
}
func (op *AddOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "Add%d#%d", op.rank, op.id) }
func (op *AddOp) Hashcode() uint32      { return hashOf(op) }
func (op *AddOp) String() string        { return "Add" }

func (op *AddOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "Add"
	args, err := floatArgs(name, 2, vs)
	if err != nil {
		return nil, err
	}
	a, b := args[0], args[1]
	if !sameShape(a.Shape(), b.Shape()) {
		return nil, fmt.Errorf("%s: shapes %v and %v differ", name, a.Shape(), b.Shape())
	}
	var y *tensor.Dense
	switch {
	case op.inPlace.on(0):
		y = a
	case op.inPlace.on(1):
		y = b
	default:
		y = op.out.get(a.Dtype(), a.Shape()...)
	}
	if a.Dtype() == tensor.Float32 {
		op.k32 = resAddArgs[float32]{y: y.Float32s(), a: a.Float32s(), b: b.Float32s(), relu: op.rectify, simd: op.kern().k.simd()}
		cpu.ParallelRun(&op.k32, len(op.k32.y), 1)
		op.k32 = resAddArgs[float32]{}
	} else {
		op.k64 = resAddArgs[float64]{y: y.Float64s(), a: a.Float64s(), b: b.Float64s(), relu: op.rectify}
		cpu.ParallelRun(&op.k64, len(op.k64.y), 1)
		op.k64 = resAddArgs[float64]{}
	}
	return y, nil
}

// resAddArgs writes y = a + b, rectified when relu is set; y may be a or
// b. simd takes the AVX-512 kernel for float32.
type resAddArgs[T Float] struct {
	y, a, b []T
	relu    bool
	simd    bool
}

func (a *resAddArgs[T]) RunRange(lo, hi int) {
	if y, ok := any(a.y).([]float32); ok && a.simd {
		simdAdd32(y[lo:hi], any(a.a).([]float32)[lo:hi], any(a.b).([]float32)[lo:hi], a.relu)
		return
	}
	ys, as, bs := a.y[lo:hi], a.a[lo:hi], a.b[lo:hi]
	as, bs = as[:len(ys)], bs[:len(ys)]
	for i := range ys {
		ys[i] = as[i] + bs[i]
	}
	if a.relu {
		rectifyInPlace(ys)
	}
}

func (op *AddOp) DiffWRT(int) []bool { return []bool{true, true} }

// SymDiff passes the output gradient to both inputs (as Gorgonia's own
// addition does); Gorgonia sums it with other gradients where needed.
func (op *AddOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	return gorgonia.Nodes{grad, grad}, nil
}
