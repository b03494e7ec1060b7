package cuda

import (
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
)

// The copy family: fills and strided copies, which lower flatten (a copy),
// concatenation and its gradient's slices, and the rows of a normalisation's
// (2, C) parameter gradient.

// FillArgs: N elements set to Value.
type FillArgs struct {
	N     int
	Value float64
}

func (a *FillArgs) params() ([]*int, []*float64) { return []*int{&a.N}, []*float64{&a.Value} }

// Copy2DArgs: Rows rows of Cols elements, row r from src[SrcOff+r*SrcStride:]
// to dst[DstOff+r*DstStride:].
type Copy2DArgs struct{ Rows, Cols, SrcStride, SrcOff, DstStride, DstOff int }

func (a *Copy2DArgs) params() ([]*int, []*float64) {
	return []*int{&a.Rows, &a.Cols, &a.SrcStride, &a.SrcOff, &a.DstStride, &a.DstOff}, nil
}

var (
	fillKernel = defKernel("fill", 1, func(a FillArgs) Dim { return gridStride(a.N) }, func(_ *Ref, _ Instr, a FillArgs, b [][]float32) {
		for i := range b[0][:a.N] {
			b[0][i] = float32(a.Value)
		}
	})
	// src -> dst
	copy2D = defKernel("copy2d", 2, func(a Copy2DArgs) Dim { return gridStride(a.Rows * a.Cols) }, func(_ *Ref, _ Instr, a Copy2DArgs, b [][]float32) {
		for r := 0; r < a.Rows; r++ {
			copy(b[1][a.DstOff+r*a.DstStride:a.DstOff+r*a.DstStride+a.Cols], b[0][a.SrcOff+r*a.SrcStride:a.SrcOff+r*a.SrcStride+a.Cols])
		}
	})
)

// lowerRow copies row d.Slice.Offset of a (2, C) tensor.
func lowerRow(l *lowerer, n *gorgonia.Node, d ops.Desc, in []int) (int, error) {
	c := elems(n)
	y := l.out(n)
	l.emit(copy2D.instr(Copy2DArgs{Rows: 1, Cols: c, SrcOff: d.Slice.Offset * c}, []int{in[0], y}, []int{y}), n)
	return y, nil
}

// lowerCopy is a flatten or its gradient: the same elements, another shape.
func lowerCopy(l *lowerer, n *gorgonia.Node, _ ops.Desc, in []int) (int, error) {
	y := l.out(n)
	l.emit(copy2D.instr(Copy2DArgs{Rows: 1, Cols: elems(n)}, []int{in[0], y}, []int{y}), n)
	return y, nil
}

func lowerConcat(l *lowerer, n *gorgonia.Node, _ ops.Desc, in []int) (int, error) {
	t := nci(shapeOf(n))
	y := l.out(n)
	off := 0
	for i, k := range graph.Children(n) {
		ci := shapeOf(k)[1]
		l.emit(copy2D.instr(Copy2DArgs{Rows: t.N, Cols: ci * t.Inner, SrcStride: ci * t.Inner, DstStride: t.C * t.Inner, DstOff: off * t.Inner},
			[]int{in[i], y}, []int{y}), n)
		off += ci
	}
	return y, nil
}

// lowerConcatSlice copies channels [d.Slice.Offset, +d.Slice.Width) of dy.
func lowerConcatSlice(l *lowerer, n *gorgonia.Node, d ops.Desc, in []int) (int, error) {
	t := nci(shapeOf(graph.Children(n)[0]))
	off, w := d.Slice.Offset, d.Slice.Width
	y := l.out(n)
	l.emit(copy2D.instr(Copy2DArgs{Rows: t.N, Cols: w * t.Inner, SrcStride: t.C * t.Inner, SrcOff: off * t.Inner, DstStride: w * t.Inner},
		[]int{in[0], y}, []int{y}), n)
	return y, nil
}
