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
// step allocates nothing in the kernels. The rule that keeps this safe under
// Gorgonia's register reuse: a backward op reads forward values only through
// its node inputs, or from private state that is never returned as a node value.
package ops

import (
	"fmt"
	"hash"
	"hash/fnv"
	"sync/atomic"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Float is the set of element types every kernel is written for.
type Float interface{ ~float32 | ~float64 }

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

// dense returns v as a *tensor.Dense of a float dtype.
func dense(v gorgonia.Value) (*tensor.Dense, error) {
	d, ok := v.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("expected *tensor.Dense, got %T", v)
	}
	if d.Dtype() != tensor.Float32 && d.Dtype() != tensor.Float64 {
		return nil, fmt.Errorf("unsupported dtype %v (float32 or float64 only)", d.Dtype())
	}
	return d, nil
}

// denses converts all of vs, checking arity and a common dtype.
func denses(name string, want int, vs []gorgonia.Value) ([]*tensor.Dense, error) {
	if len(vs) != want {
		return nil, fmt.Errorf("%s: expected %d inputs, got %d", name, want, len(vs))
	}
	out := make([]*tensor.Dense, len(vs))
	for i, v := range vs {
		d, err := dense(v)
		if err != nil {
			return nil, fmt.Errorf("%s input %d: %w", name, i, err)
		}
		if i > 0 && d.Dtype() != out[0].Dtype() {
			return nil, fmt.Errorf("%s: input %d has dtype %v, input 0 has %v", name, i, d.Dtype(), out[0].Dtype())
		}
		out[i] = d
	}
	return out, nil
}

// buffer is an op-owned tensor reused across runs while shape and dtype hold.
type buffer struct{ t *tensor.Dense }

// get returns the buffer for (dt, shape), reallocating only when either changed.
// The contents are whatever the last run left; callers overwrite or zero them.
func (b *buffer) get(dt tensor.Dtype, shape ...int) *tensor.Dense {
	if b.t != nil && b.t.Dtype() == dt && sameShape(b.t.Shape(), shape) {
		return b.t
	}
	b.t = tensor.New(tensor.Of(dt), tensor.WithShape(shape...))
	return b.t
}

// zeroed is get followed by clearing the contents.
func (b *buffer) zeroed(dt tensor.Dtype, shape ...int) *tensor.Dense {
	t := b.get(dt, shape...)
	t.Zero()
	return t
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

// slices returns the backing data of ts as []T; all must have element type T.
func slices[T Float](ts ...*tensor.Dense) [][]T {
	out := make([][]T, len(ts))
	for i, t := range ts {
		out[i] = t.Data().([]T)
	}
	return out
}

// data returns the backing slice of t as []T.
func data[T Float](t *tensor.Dense) []T { return t.Data().([]T) }

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
