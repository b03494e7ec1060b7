package ops

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// FlattenOp reshapes (N, d1, d2, ...) to (N, d1*d2*...) as one node. It
// copies into its own buffer rather than aliasing its input, so that
// Gorgonia's register reuse can never see one array under two names.
type FlattenOp struct {
	noCommon
	rank int
	id   uint64
	outBuf
}

// Flatten reshapes x (N, d1, d2, ...) of rank at least 2 to (N, d1*d2*...).
func Flatten(x *gorgonia.Node) (*gorgonia.Node, error) {
	if x == nil {
		return nil, fmt.Errorf("Flatten: nil input")
	}
	if x.Dims() < 2 {
		return nil, fmt.Errorf("Flatten: input must have rank 2 or more, got shape %v", x.Shape())
	}
	return gorgonia.ApplyOp(&FlattenOp{rank: x.Dims(), id: nextID()}, x)
}

func flattenShape(s tensor.Shape) (tensor.Shape, error) {
	if len(s) < 2 {
		return nil, fmt.Errorf("Flatten: input must have rank 2 or more, got shape %v", s)
	}
	rest := 1
	for _, d := range s[1:] {
		rest *= d
	}
	return tensor.Shape{s[0], rest}, nil
}

func (op *FlattenOp) Arity() int { return 1 }
func (op *FlattenOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return fnType(tensorType(op.rank, a), tensorType(2, a))
}
func (op *FlattenOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	return flattenShape(s)
}
func (op *FlattenOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "Flatten%d#%d", op.rank, op.id) }
func (op *FlattenOp) Hashcode() uint32      { return hashOf(op) }
func (op *FlattenOp) String() string        { return "Flatten" }

func (op *FlattenOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	var in [1]*tensor.Dense
	if err := convArgs("Flatten", 1, vs, in[:]); err != nil {
		return nil, err
	}
	x := in[0]
	s := x.Shape()
	if len(s) < 2 {
		return nil, fmt.Errorf("Flatten: input must have rank 2 or more, got shape %v", s)
	}
	rest := 1
	for _, d := range s[1:] {
		rest *= d
	}
	y := op.out.get(x.Dtype(), s[0], rest)
	flattenCopy(y, x)
	return y, nil
}

// flattenCopy copies src's elements into dst (same dtype and size).
func flattenCopy(dst, src *tensor.Dense) {
	if src.Dtype() == tensor.Float32 {
		copy(dst.Float32s(), src.Float32s())
	} else {
		copy(dst.Float64s(), src.Float64s())
	}
}

func (op *FlattenOp) DiffWRT(int) []bool { return []bool{true} }
func (op *FlattenOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	dx, err := gorgonia.ApplyOp(&flattenGradOp{xshape: inputs[0].Shape().Clone(), id: nextID()}, grad)
	if err != nil {
		return nil, fmt.Errorf("Flatten backward: %w", err)
	}
	return gorgonia.Nodes{dx}, nil
}

// flattenGradOp reshapes the gradient (N, rest) back to the input's shape
// (the batch size taken from the gradient).
type flattenGradOp struct {
	noCommon
	nonDiff
	xshape tensor.Shape
	id     uint64
	outBuf
}

func (op *flattenGradOp) Arity() int { return 1 }
func (op *flattenGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return fnType(tensorType(2, a), tensorType(len(op.xshape), a))
}
func (op *flattenGradOp) shape(dys tensor.Shape) (tensor.Shape, error) {
	want, _ := flattenShape(op.xshape)
	if len(dys) != 2 || dys[1] != want[1] {
		return nil, fmt.Errorf("FlattenGrad: gradient %v, want (N,%d) for input %v", dys, want[1], op.xshape)
	}
	s := op.xshape.Clone()
	s[0] = dys[0]
	return s, nil
}
func (op *flattenGradOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	return op.shape(s)
}
func (op *flattenGradOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "FlattenGrad%v#%d", op.xshape, op.id) }
func (op *flattenGradOp) Hashcode() uint32      { return hashOf(op) }
func (op *flattenGradOp) String() string        { return "FlattenGrad" }

func (op *flattenGradOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	var in [1]*tensor.Dense
	if err := convArgs("FlattenGrad", 1, vs, in[:]); err != nil {
		return nil, err
	}
	dy := in[0]
	dys := dy.Shape()
	rest := 1
	for _, d := range op.xshape[1:] {
		rest *= d
	}
	if len(dys) != 2 || dys[1] != rest {
		return nil, fmt.Errorf("FlattenGrad: gradient %v, want (N,%d) for input %v", dys, rest, op.xshape)
	}
	var dx *tensor.Dense
	switch len(op.xshape) {
	case 2:
		dx = op.out.get(dy.Dtype(), dys[0], op.xshape[1])
	case 3:
		dx = op.out.get(dy.Dtype(), dys[0], op.xshape[1], op.xshape[2])
	case 4:
		dx = op.out.get(dy.Dtype(), dys[0], op.xshape[1], op.xshape[2], op.xshape[3])
	default:
		s, err := op.shape(dys)
		if err != nil {
			return nil, err
		}
		dx = op.out.get(dy.Dtype(), s...)
	}
	flattenCopy(dx, dy)
	return dx, nil
}
