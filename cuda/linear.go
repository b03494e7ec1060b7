package cuda

import (
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
)

// The linear family: cuBLAS GEMMs, the bias added per row and its gradient
// as column sums.

var (
	// bias, y -> y + bias on every row
	biasRows = defKernel("bias_rows", 2, func(a RowsArgs) Dim { return gridStride(a.Rows * a.Cols) }, func(_ *Ref, _ Instr, a RowsArgs, b [][]float32) {
		for i := 0; i < a.Rows*a.Cols; i++ {
			b[1][i] += b[0][i%a.Cols]
		}
	})
	// m -> column sums: one thread per column
	sumRows = defKernel("sum_rows", 2, func(a RowsArgs) Dim { return perItem(a.Cols) }, func(_ *Ref, _ Instr, a RowsArgs, b [][]float32) {
		for j := 0; j < a.Cols; j++ {
			var s float32
			for r := 0; r < a.Rows; r++ {
				s += b[0][r*a.Cols+j]
			}
			b[1][j] = s
		}
	})
)

// (x, w[, b]): y = b (rows), y += x·wᵀ, the CPU's order.
func lowerLinear(l *lowerer, n *gorgonia.Node, d ops.Desc, in []int) (int, error) {
	ys := shapeOf(n)
	xs := shapeOf(graph.Children(n)[0])
	rows, outN, inN := ys[0], ys[1], xs[1]
	y := l.out(n)
	beta := 0.0
	if d.Bias {
		l.emit(fillKernel.instr(FillArgs{N: rows * outN}, []int{y}, []int{y}), n)
		l.emit(biasRows.instr(RowsArgs{Rows: rows, Cols: outN}, []int{in[2], y}, []int{y}), n)
		beta = 1
	}
	x, _ := l.gemmOperand(in[0], n)
	w, woff := l.gemmOperand(in[1], n)
	ga := GemmArgs{TransB: true, M: rows, N: outN, K: inN, LDA: inN, LDB: inN, LDC: outN, Batch: 1, BOff: woff}
	if err := l.gemm(ga, 1, beta, x, w, y, n); err != nil {
		return 0, err
	}
	return y, nil
}

// (w, dy) -> dx (N,In) = dy (N,Out) · w (Out,In)
func lowerLinearDataGrad(l *lowerer, n *gorgonia.Node, _ ops.Desc, in []int) (int, error) {
	dx := l.out(n)
	ws, dys := shapeOf(graph.Children(n)[0]), shapeOf(graph.Children(n)[1])
	dy, _ := l.gemmOperand(in[1], n)
	w, woff := l.gemmOperand(in[0], n)
	ga := GemmArgs{M: dys[0], N: ws[1], K: ws[0], LDA: ws[0], LDB: ws[1], LDC: ws[1], Batch: 1, BOff: woff}
	return dx, l.gemm(ga, 1, 0, dy, w, dx, n)
}

// (x, dy) -> dw (Out,In) = dyᵀ · x
func lowerLinearWeightGrad(l *lowerer, n *gorgonia.Node, _ ops.Desc, in []int) (int, error) {
	dw := l.out(n)
	xs, dys := shapeOf(graph.Children(n)[0]), shapeOf(graph.Children(n)[1])
	dy, _ := l.gemmOperand(in[1], n)
	x, _ := l.gemmOperand(in[0], n)
	ga := GemmArgs{TransA: true, M: dys[1], N: xs[1], K: xs[0], LDA: dys[1], LDB: xs[1], LDC: xs[1], Batch: 1}
	return dw, l.gemm(ga, 1, 0, dy, x, dw, n)
}

// (dy) -> db: column sums
func lowerLinearBiasGrad(l *lowerer, n *gorgonia.Node, _ ops.Desc, in []int) (int, error) {
	db := l.out(n)
	dys := shapeOf(graph.Children(n)[0])
	l.emit(sumRows.instr(RowsArgs{Rows: dys[0], Cols: dys[1]}, []int{in[0], db}, []int{db}), n)
	return db, nil
}
