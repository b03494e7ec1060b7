package ops

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ReLUOp is max(x, 0) as one node. The erase pass finds ReLUs by this type.
type ReLUOp struct {
	noCommon
	rank int
	id   uint64
	out  buffer
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

func (op *ReLUOp) Arity() int { return 1 }
func (op *ReLUOp) Type() hm.Type {
	t := tensorType(op.rank, hm.TypeVariable('a'))
	return fnType(t, t)
}
func (op *ReLUOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	return s.Clone(), nil
}
func (op *ReLUOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "ReLU%d#%d", op.rank, op.id) }
func (op *ReLUOp) Hashcode() uint32      { return hashOf(op) }
func (op *ReLUOp) String() string        { return "ReLU" }

func (op *ReLUOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	in, err := denses("ReLU", 1, vs)
	if err != nil {
		return nil, err
	}
	x := in[0]
	y := op.out.get(x.Dtype(), x.Shape()...)
	switch x.Dtype() {
	case tensor.Float32:
		reluForward(data[float32](y), data[float32](x))
	default:
		reluForward(data[float64](y), data[float64](x))
	}
	return y, nil
}

func reluForward[T Float](y, x []T) {
	parallelFor(len(x), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if v := x[i]; v > 0 {
				y[i] = v
			} else {
				y[i] = 0
			}
		}
	})
}

func (op *ReLUOp) DiffWRT(int) []bool { return []bool{true} }
func (op *ReLUOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	dx, err := gorgonia.ApplyOp(&reluBackwardOp{rank: op.rank, id: nextID()}, output, grad)
	if err != nil {
		return nil, fmt.Errorf("ReLU backward: %w", err)
	}
	return gorgonia.Nodes{dx}, nil
}

// reluBackwardOp computes dx = dy * (y > 0) from the output y and its gradient dy.
type reluBackwardOp struct {
	noCommon
	nonDiff
	rank int
	id   uint64
	out  buffer
}

func (op *reluBackwardOp) Arity() int { return 2 }
func (op *reluBackwardOp) Type() hm.Type {
	t := tensorType(op.rank, hm.TypeVariable('a'))
	return fnType(t, t, t)
}
func (op *reluBackwardOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	return s.Clone(), nil
}
func (op *reluBackwardOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "ReLUBackward%d#%d", op.rank, op.id) }
func (op *reluBackwardOp) Hashcode() uint32      { return hashOf(op) }
func (op *reluBackwardOp) String() string        { return "ReLUBackward" }

func (op *reluBackwardOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	in, err := denses("ReLUBackward", 2, vs)
	if err != nil {
		return nil, err
	}
	y, dy := in[0], in[1]
	dx := op.out.get(y.Dtype(), y.Shape()...)
	switch y.Dtype() {
	case tensor.Float32:
		reluBackward(data[float32](dx), data[float32](y), data[float32](dy))
	default:
		reluBackward(data[float64](dx), data[float64](y), data[float64](dy))
	}
	return dx, nil
}

func reluBackward[T Float](dx, y, dy []T) {
	parallelFor(len(y), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if y[i] > 0 {
				dx[i] = dy[i]
			} else {
				dx[i] = 0
			}
		}
	})
}
