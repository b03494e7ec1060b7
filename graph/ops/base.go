// Package ops is the project's op library: every layer of the paper's networks
// as a Gorgonia Op with forward and backward CPU kernels written here, for
// float32 and float64.
//
// Each op appears as one node in the expression graph, so the erase pass can
// find it by type. Constructors take and return *gorgonia.Node; the gradient of
// an op is one or more backward ops (themselves Ops, not differentiable again)
// that Gorgonia's symbolic differentiation inserts through SymDiff.
//
// Buffers: an op owns its output buffer and any saved state, allocated on the
// first run and reused while the input shapes stay the same, so a training
// step allocates nothing in the kernels. The rule that keeps this safe: a
// backward op reads forward values only through its node inputs, or from
// private state that is never returned as a node value.
//
// The memory plan (graph/plan.go, made by graph.Compile; storage.go is the
// ops' side) builds on that rule: an element-wise op may write over an
// input nothing else reads (ReLU, add, ReLU backward), and backward ops
// whose values are never alive at the same time share storage. Ops therefore never assume that their output buffer
// keeps its contents between runs, and an op that takes an input only to be
// ordered after it declares so (OrdersOnly).
package ops

import (
	"fmt"
	"github.com/eraserelu/eraserelu/graph/ops/cpu"
	"hash"
	"hash/fnv"
	"sync/atomic"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Float is the set of element types every kernel is written for.
type Float = cpu.Float

var opSerial atomic.Uint64

// nextID gives each stateful op a distinct identity, so Gorgonia's
// common-subexpression merging (by hash) never fuses two ops that own
// different state, e.g. two dropouts of the same input.
func nextID() uint64 { return opSerial.Add(1) }

// tensorType is the Gorgonia type of a tensor of rank dims over the type variable a.
func tensorType(dims int, a hm.Type) hm.Type {
	if dims == 0 {
		return a
	}
	return gorgonia.TensorType{Dims: dims, Of: a}
}

// fnType builds a -> b -> ... -> ret.
func fnType(ts ...hm.Type) hm.Type { return hm.NewFnType(ts...) }

// hashOf is the Hashcode for an op whose WriteHash is defined.
func hashOf(op interface{ WriteHash(hash.Hash) }) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}

// shapeOf extracts the shape from an InferShape argument.
func shapeOf(ds gorgonia.DimSizer) (tensor.Shape, error) {
	s, ok := ds.(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("expected a tensor.Shape, got %T", ds)
	}
	return s, nil
}

// clonedShape is the InferShape of an op whose output has the shape of
// one of its inputs.
func clonedShape(ds gorgonia.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(ds)
	if err != nil {
		return nil, err
	}
	return s.Clone(), nil
}

// argCount checks the number of inputs of op.
func argCount(op string, want int, vs []gorgonia.Value) error {
	if len(vs) != want {
		return fmt.Errorf("%s: expected %d inputs, got %d", op, want, len(vs))
	}
	return nil
}

// argDense checks that input i of op is a contiguous float *tensor.Dense.
// Read its data with Float32s or Float64s, which never allocate (Data does,
// boxing the slice into an interface).
func argDense(op string, i int, v gorgonia.Value) (*tensor.Dense, error) {
	d, ok := v.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("%s input %d: expected *tensor.Dense, got %T", op, i, v)
	}
	if dt := d.Dtype(); dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, fmt.Errorf("%s input %d: unsupported dtype %v (float32 or float64 only)", op, i, dt)
	}
	if d.RequiresIterator() {
		return nil, fmt.Errorf("%s input %d: non-contiguous tensor views are not supported", op, i)
	}
	return d, nil
}

// argLike is argDense that also requires the dtype of ref.
func argLike(op string, i int, v gorgonia.Value, ref *tensor.Dense) (*tensor.Dense, error) {
	d, err := argDense(op, i, v)
	if err != nil {
		return nil, err
	}
	if d.Dtype() != ref.Dtype() {
		return nil, fmt.Errorf("%s input %d: dtype %v, input 0 has %v", op, i, d.Dtype(), ref.Dtype())
	}
	return d, nil
}

// maxFloatArgs is the most inputs floatArgs checks at once.
const maxFloatArgs = 4

// floatArgs checks that op got exactly n inputs (n <= maxFloatArgs), each a
// contiguous float *tensor.Dense of input 0's dtype, and returns them in
// order. An array, not a slice: a Do on the training step allocates nothing.
func floatArgs(op string, n int, vs []gorgonia.Value) (args [maxFloatArgs]*tensor.Dense, err error) {
	if n > maxFloatArgs {
		panic(fmt.Sprintf("%s: floatArgs checks at most %d inputs", op, maxFloatArgs))
	}
	if err := argCount(op, n, vs); err != nil {
		return args, err
	}
	if args[0], err = argDense(op, 0, vs[0]); err != nil {
		return args, err
	}
	for i := 1; i < n; i++ {
		if args[i], err = argLike(op, i, vs[i], args[0]); err != nil {
			return args, err
		}
	}
	return args, nil
}

// buffer is an op-owned tensor reused across runs while shape and dtype
// hold. A memory plan (plan.go) may give it a slot: storage shared with
// other ops' buffers whose values are never alive at the same time.
type buffer struct {
	t    *tensor.Dense
	slot *Slot
	gen  uint64 // the slot's generation t was made for
}

// get returns the buffer for (dt, shape), reallocating only when either
// changed (or, in a slot, when the slot's storage was reallocated). The
// contents are whatever the last run left, of this op or of another one
// sharing the slot; callers overwrite or zero them.
func (b *buffer) get(dt tensor.Dtype, shape ...int) *tensor.Dense {
	if b.slot != nil && (dt == tensor.Float32 || dt == tensor.Float64) {
		return b.slotGet(dt, shape)
	}
	if b.t != nil && b.t.Dtype() == dt && sameShape(b.t.Shape(), shape) && b.gen == 0 {
		return b.t
	}
	b.t, b.gen = tensor.New(tensor.Of(dt), tensor.WithShape(shape...)), 0
	return b.t
}

func (b *buffer) slotGet(dt tensor.Dtype, shape []int) *tensor.Dense {
	s := b.slot
	if b.t != nil && b.gen == s.gen && b.t.Dtype() == dt && sameShape(b.t.Shape(), shape) {
		return b.t
	}
	n := 1
	for _, d := range shape {
		n *= d
	}
	if dt == tensor.Float32 {
		if len(s.f32) < n {
			s.f32 = make([]float32, n)
			s.gen++
		}
		b.t = tensor.New(tensor.WithShape(shape...), tensor.WithBacking(s.f32[:n]))
	} else {
		if len(s.f64) < n {
			s.f64 = make([]float64, n)
			s.gen++
		}
		b.t = tensor.New(tensor.WithShape(shape...), tensor.WithBacking(s.f64[:n]))
	}
	b.gen = s.gen
	return b.t
}

func sameShape(a tensor.Shape, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// noCommon holds the Op methods that are the same for every op here.
type noCommon struct{}

func (noCommon) ReturnsPtr() bool     { return false }
func (noCommon) CallsExtern() bool    { return false }
func (noCommon) OverwritesInput() int { return -1 }

// nonDiff marks a backward op: Gorgonia never differentiates through it.
type nonDiff struct{}

func (nonDiff) DiffWRT(n int) []bool { return make([]bool, n) }
func (nonDiff) SymDiff(gorgonia.Nodes, *gorgonia.Node, *gorgonia.Node) (gorgonia.Nodes, error) {
	return nil, fmt.Errorf("backward ops are not differentiable")
}
