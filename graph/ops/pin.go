package ops

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// PinOp copies its input into a tensor fixed at construction and returns
// that tensor. A pinned value (a gradient, the loss) can be read after a
// run whatever the machine did with its registers.
type PinOp struct {
	noCommon
	nonDiff
	target *tensor.Dense
	rank   int
	id     uint64
}

// Pin returns a node whose value is x copied into target, which must have
// x's shape and dtype.
func Pin(x *gorgonia.Node, target *tensor.Dense) (*gorgonia.Node, error) {
	if !x.Shape().Eq(target.Shape()) && !(x.IsScalar() && target.Shape().TotalSize() == 1) {
		return nil, fmt.Errorf("pin: node %v has shape %v, target %v", x, x.Shape(), target.Shape())
	}
	if x.Dtype() != target.Dtype() {
		return nil, fmt.Errorf("pin: node %v has dtype %v, target %v", x, x.Dtype(), target.Dtype())
	}
	return gorgonia.ApplyOp(&PinOp{target: target, rank: x.Dims(), id: nextID()}, x)
}

func (op *PinOp) Arity() int { return 1 }
func (op *PinOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t := tensorType(op.rank, a)
	return fnType(t, t)
}
func (op *PinOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	return shapeOf(in[0])
}
func (op *PinOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "Pin#%d", op.id) }
func (op *PinOp) Hashcode() uint32      { return hashOf(op) }
func (op *PinOp) String() string        { return "Pin" }

func (op *PinOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	if len(vs) != 1 {
		return nil, fmt.Errorf("pin: expected 1 input, got %d", len(vs))
	}
	// typed accessors, not Data(), which boxes the slice (an allocation
	// per pin per step)
	switch op.target.Dtype() {
	case tensor.Float32:
		dst := op.target.Float32s()
		switch src := vs[0].(type) {
		case *tensor.Dense:
			if src.Dtype() != tensor.Float32 {
				return nil, fmt.Errorf("pin: value of dtype %v into a float32 target", src.Dtype())
			}
			copy(dst, src.Float32s())
		case *gorgonia.F32:
			dst[0] = float32(*src)
		default:
			return nil, fmt.Errorf("pin: value of type %T into a float32 target", src)
		}
	case tensor.Float64:
		dst := op.target.Float64s()
		switch src := vs[0].(type) {
		case *tensor.Dense:
			if src.Dtype() != tensor.Float64 {
				return nil, fmt.Errorf("pin: value of dtype %v into a float64 target", src.Dtype())
			}
			copy(dst, src.Float64s())
		case *gorgonia.F64:
			dst[0] = float64(*src)
		default:
			return nil, fmt.Errorf("pin: value of type %T into a float64 target", src)
		}
	default:
		return nil, fmt.Errorf("pin: unsupported target dtype %v", op.target.Dtype())
	}
	if op.rank == 0 {
		return vs[0], nil
	}
	return op.target, nil
}
