package ops

// Helpers shared by the normalisation, regularisation, merge and loss ops
// (batchnorm*, layernorm*, dropout*, stochdepth*, prelu*, add*, concat*,
// shortcut*, crossentropy*). They are named norm* to stay clear of helpers
// added to the package by other files.
//
// Like every op here they read their inputs with argDense and friends
// (base.go), which never allocate: testing.AllocsPerRun checks that a warm op
// allocates nothing (batchnorm_internal_test.go).

import (
	"fmt"
	"hash"
	"runtime"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// normScalar reads a float scalar value: a gorgonia scalar (*F64, *F32) or
// a one-element dense tensor.
func normScalar(op string, i int, v gorgonia.Value) (float64, error) {
	switch s := v.(type) {
	case *gorgonia.F64:
		return float64(*s), nil
	case *gorgonia.F32:
		return float64(*s), nil
	case *tensor.Dense:
		if s.Size() == 1 {
			switch s.Dtype() {
			case tensor.Float64:
				return s.Float64s()[0], nil
			case tensor.Float32:
				return float64(s.Float32s()[0]), nil
			}
		}
	}
	return 0, fmt.Errorf("%s input %d: expected a float scalar, got %T", op, i, v)
}

// normSerial reports whether parallelItems(n, itemSize, ·) would run inline.
// Callers use it to call the kernel directly in that case: a func literal
// passed to parallelItems escapes and costs an allocation, a direct call does
// not. The result only decides where the kernel runs, never what it computes.
func normSerial(n, itemSize int) bool {
	return n <= 1 || n*itemSize < 2*minGrain || runtime.GOMAXPROCS(0) <= 1
}

// normGet and normSet read and write element i of a float tensor as float64;
// used for per-channel state (running statistics), never per element.
func normGet(t *tensor.Dense, i int) float64 {
	if t.Dtype() == tensor.Float32 {
		return float64(t.Float32s()[i])
	}
	return t.Float64s()[i]
}

func normSet(t *tensor.Dense, i int, v float64) {
	if t.Dtype() == tensor.Float32 {
		t.Float32s()[i] = float32(v)
		return
	}
	t.Float64s()[i] = v
}

// normGrow returns s resized to n, reusing its storage when large enough.
func normGrow[E any](s []E, n int) []E {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]E, n)
}

// normRowOp copies row k of a (2, C) tensor into a (C) tensor. The backward
// ops of the normalisations compute the gradients of gamma and beta together
// as one (2, C) node; two normRowOps split it into the two gradients.
type normRowOp struct {
	noCommon
	nonDiff
	row int
	id  uint64
	outBuf
}

func (op *normRowOp) Arity() int { return 1 }
func (op *normRowOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return fnType(tensorType(2, a), tensorType(1, a))
}
func (op *normRowOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	if len(s) != 2 || s[0] <= op.row {
		return nil, fmt.Errorf("Row%d: input shape %v has no row %d", op.row, s, op.row)
	}
	return tensor.Shape{s[1]}, nil
}
func (op *normRowOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "Row%d#%d", op.row, op.id) }
func (op *normRowOp) Hashcode() uint32      { return hashOf(op) }
func (op *normRowOp) String() string        { return fmt.Sprintf("Row%d", op.row) }

func (op *normRowOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	if err := argCount("Row", 1, vs); err != nil {
		return nil, err
	}
	x, err := argDense("Row", 0, vs[0])
	if err != nil {
		return nil, err
	}
	s := x.Shape()
	if len(s) != 2 || s[0] <= op.row {
		return nil, fmt.Errorf("Row%d: input shape %v has no row %d", op.row, s, op.row)
	}
	c := s[1]
	y := op.out.get(x.Dtype(), s[1:]...)
	if x.Dtype() == tensor.Float32 {
		copy(y.Float32s(), x.Float32s()[op.row*c:(op.row+1)*c])
	} else {
		copy(y.Float64s(), x.Float64s()[op.row*c:(op.row+1)*c])
	}
	return y, nil
}

// normSplitRows applies two normRowOps to a (2, C) node.
func normSplitRows(red *gorgonia.Node) (*gorgonia.Node, *gorgonia.Node, error) {
	r0, err := gorgonia.ApplyOp(&normRowOp{row: 0, id: nextID()}, red)
	if err != nil {
		return nil, nil, err
	}
	r1, err := gorgonia.ApplyOp(&normRowOp{row: 1, id: nextID()}, red)
	if err != nil {
		return nil, nil, err
	}
	return r0, r1, nil
}
