package ops

import (
	"fmt"
	"github.com/eraserelu/eraserelu/graph/ops/cpu"
	"hash"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ConcatOp joins tensors along axis 1 (channels) as one node: the merge of
// an inception module. The inputs have rank 2 or 4 and equal sizes on every
// other axis.
type ConcatOp struct {
	noCommon
	rank, n int
	id      uint64
	outBuf

	// reused per run
	shp    [4]int
	chans  []int
	src32  [][]float32
	src64  [][]float64
	offset []int
}

// Concat concatenates xs (one or more) along axis 1.
func Concat(xs ...*gorgonia.Node) (*gorgonia.Node, error) {
	if len(xs) == 0 {
		return nil, fmt.Errorf("ops.Concat: no inputs")
	}
	s0 := xs[0].Shape()
	if len(s0) != 2 && len(s0) != 4 {
		return nil, fmt.Errorf("ops.Concat: input 0 has shape %v, want rank 2 or 4", s0)
	}
	for i, x := range xs[1:] {
		if err := concatCompatible(s0, x.Shape()); err != nil {
			return nil, fmt.Errorf("ops.Concat: input %d: %w", i+1, err)
		}
	}
	n, err := gorgonia.ApplyOp(&ConcatOp{rank: len(s0), n: len(xs), id: nextID()}, xs...)
	if err != nil {
		return nil, fmt.Errorf("ops.Concat: %w", err)
	}
	return n, nil
}

func concatCompatible(s0, s tensor.Shape) error {
	if len(s) != len(s0) {
		return fmt.Errorf("shape %v, input 0 has %v", s, s0)
	}
	for k := range s {
		if k != 1 && s[k] != s0[k] {
			return fmt.Errorf("shape %v does not match %v off axis 1", s, s0)
		}
	}
	return nil
}

// IsConcat reports whether n is a channel-concat node of this library.
func IsConcat(n *gorgonia.Node) bool {
	_, ok := n.Op().(*ConcatOp)
	return ok
}

func (op *ConcatOp) Arity() int { return op.n }
func (op *ConcatOp) Type() hm.Type {
	t := tensorType(op.rank, hm.TypeVariable('a'))
	ts := make([]hm.Type, op.n+1)
	for i := range ts {
		ts[i] = t
	}
	return fnType(ts...)
}
func (op *ConcatOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	if len(in) != op.n {
		return nil, fmt.Errorf("Concat: %d input shapes, want %d", len(in), op.n)
	}
	s0, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	out := s0.Clone()
	for i := 1; i < len(in); i++ {
		s, err := shapeOf(in[i])
		if err != nil {
			return nil, err
		}
		if err := concatCompatible(s0, s); err != nil {
			return nil, fmt.Errorf("Concat input %d: %w", i, err)
		}
		out[1] += s[1]
	}
	return out, nil
}
func (op *ConcatOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "Concat%d/%d#%d", op.rank, op.n, op.id) }
func (op *ConcatOp) Hashcode() uint32      { return hashOf(op) }
func (op *ConcatOp) String() string        { return "Concat" }

func (op *ConcatOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "Concat"
	if err := argCount(name, op.n, vs); err != nil {
		return nil, err
	}
	x0, err := argDense(name, 0, vs[0])
	if err != nil {
		return nil, err
	}
	s0 := x0.Shape()
	if len(s0) != op.rank {
		return nil, fmt.Errorf("%s input 0: shape %v, want rank %d", name, s0, op.rank)
	}
	op.chans = normGrow(op.chans, op.n)
	total := 0
	dt := x0.Dtype()
	if dt == tensor.Float32 {
		op.src32 = normGrow(op.src32, op.n)
	} else {
		op.src64 = normGrow(op.src64, op.n)
	}
	for i, v := range vs {
		x, err := argLike(name, i, v, x0)
		if err != nil {
			return nil, err
		}
		if i > 0 && !concatMatches(s0, x.Shape()) {
			return nil, fmt.Errorf("%s input %d: shape %v does not match %v off axis 1", name, i, x.Shape(), s0)
		}
		op.chans[i] = x.Shape()[1]
		total += op.chans[i]
		if dt == tensor.Float32 {
			op.src32[i] = x.Float32s()
		} else {
			op.src64[i] = x.Float64s()
		}
	}
	copy(op.shp[:], s0)
	op.shp[1] = total
	y := op.out.get(dt, op.shp[:op.rank]...)
	inner := 1
	for _, d := range s0[2:] {
		inner *= d
	}
	if dt == tensor.Float32 {
		concatRun(concatArgs[float32]{y: y.Float32s(), srcs: op.src32, chans: op.chans, total: total, inner: inner})
		clear(op.src32) // drop references to the inputs
	} else {
		concatRun(concatArgs[float64]{y: y.Float64s(), srcs: op.src64, chans: op.chans, total: total, inner: inner})
		clear(op.src64)
	}
	return y, nil
}

// concatMatches is concatCompatible without the error.
func concatMatches(s0, s tensor.Shape) bool {
	if len(s) != len(s0) {
		return false
	}
	for k := range s {
		if k != 1 && s[k] != s0[k] {
			return false
		}
	}
	return true
}

type concatArgs[T Float] struct {
	y            []T
	srcs         [][]T
	chans        []int
	total, inner int
}

func concatRun[T Float](a concatArgs[T]) {
	n := len(a.y) / (a.total * a.inner)
	if a.total*a.inner == 0 {
		return
	}
	if normSerial(n, a.total*a.inner) {
		a.run(0, n)
		return
	}
	cpu.ParallelItems(n, a.total*a.inner, a.run)
}

// run copies samples [lo, hi): each input's block of channels is contiguous.
func (a concatArgs[T]) run(lo, hi int) {
	for s := lo; s < hi; s++ {
		off := s * a.total * a.inner
		for i, src := range a.srcs {
			w := a.chans[i] * a.inner
			copy(a.y[off:off+w], src[s*w:(s+1)*w])
			off += w
		}
	}
}

func (op *ConcatOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = true
	}
	return d
}

// SymDiff gives input i the slice of dy at its channels.
func (op *ConcatOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	out := make(gorgonia.Nodes, len(inputs))
	off := 0
	for i, x := range inputs {
		w := x.Shape()[1]
		dx, err := gorgonia.ApplyOp(&concatSliceOp{rank: op.rank, off: off, width: w, id: nextID()}, grad)
		if err != nil {
			return nil, fmt.Errorf("Concat backward, input %d: %w", i, err)
		}
		out[i] = dx
		off += w
	}
	return out, nil
}

// concatSliceOp copies channels [off, off+width) of its input.
type concatSliceOp struct {
	noCommon
	nonDiff
	rank, off, width int
	id               uint64
	outBuf
	shp [4]int
}

func (op *concatSliceOp) Arity() int { return 1 }
func (op *concatSliceOp) Type() hm.Type {
	t := tensorType(op.rank, hm.TypeVariable('a'))
	return fnType(t, t)
}
func (op *concatSliceOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	if len(s) < 2 || s[1] < op.off+op.width {
		return nil, fmt.Errorf("ConcatSlice: input shape %v has no channels [%d, %d)", s, op.off, op.off+op.width)
	}
	out := s.Clone()
	out[1] = op.width
	return out, nil
}
func (op *concatSliceOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "ConcatSlice%d[%d:%d]#%d", op.rank, op.off, op.off+op.width, op.id)
}
func (op *concatSliceOp) Hashcode() uint32 { return hashOf(op) }
func (op *concatSliceOp) String() string {
	return fmt.Sprintf("ConcatSlice[%d:%d]", op.off, op.off+op.width)
}

func (op *concatSliceOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "ConcatSlice"
	if err := argCount(name, 1, vs); err != nil {
		return nil, err
	}
	dy, err := argDense(name, 0, vs[0])
	if err != nil {
		return nil, err
	}
	s := dy.Shape()
	if len(s) != op.rank || s[1] < op.off+op.width {
		return nil, fmt.Errorf("%s: input shape %v has no channels [%d, %d)", name, s, op.off, op.off+op.width)
	}
	copy(op.shp[:], s)
	op.shp[1] = op.width
	dx := op.out.get(dy.Dtype(), op.shp[:op.rank]...)
	inner := 1
	for _, d := range s[2:] {
		inner *= d
	}
	if dy.Dtype() == tensor.Float32 {
		concatSliceRun(catSliceArgs[float32]{dx: dx.Float32s(), dy: dy.Float32s(), total: s[1], off: op.off, width: op.width, inner: inner})
	} else {
		concatSliceRun(catSliceArgs[float64]{dx: dx.Float64s(), dy: dy.Float64s(), total: s[1], off: op.off, width: op.width, inner: inner})
	}
	return dx, nil
}

type catSliceArgs[T Float] struct {
	dx, dy                   []T
	total, off, width, inner int
}

func concatSliceRun[T Float](a catSliceArgs[T]) {
	item := a.width * a.inner
	if item == 0 {
		return
	}
	n := len(a.dx) / item
	if normSerial(n, item) {
		a.run(0, n)
		return
	}
	cpu.ParallelItems(n, item, a.run)
}

func (a catSliceArgs[T]) run(lo, hi int) {
	w := a.width * a.inner
	for s := lo; s < hi; s++ {
		src := (s*a.total + a.off) * a.inner
		copy(a.dx[s*w:(s+1)*w], a.dy[src:src+w])
	}
}
