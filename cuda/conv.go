package cuda

import (
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	"gorgonia.org/gorgonia"
)

// The convolution family: im2col + cuBLAS GEMMs (grouped convolutions one
// GEMM per group, strided over the images), col2im for the data gradient,
// per-image partial filter gradients summed by sum_rows (linear.go).

// Im2colArgs: images (N, C, H, W), a KH x KW window moved by (SH, SW) over
// the input padded by (PH, PW), output positions OH x OW. im2col writes the
// columns (N, C*KH*KW, OH*OW); col2im adds them back into an image.
type Im2colArgs struct{ N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW int }

func (a *Im2colArgs) params() ([]*int, []*float64) {
	return []*int{&a.N, &a.C, &a.H, &a.W, &a.KH, &a.KW, &a.SH, &a.SW, &a.PH, &a.PW, &a.OH, &a.OW}, nil
}

var (
	// x -> columns
	im2col = defKernel("im2col", 2, func(a Im2colArgs) Dim { return gridStride(a.N * a.C * a.OH * a.OW) }, func(_ *Ref, _ Instr, a Im2colArgs, b [][]float32) {
		refIm2col(a, b, false)
	})
	// columns -> x
	col2im = defKernel("col2im", 2, func(a Im2colArgs) Dim { return gridStride(a.N * a.C * a.H * a.W) }, func(_ *Ref, _ Instr, a Im2colArgs, b [][]float32) {
		clear(b[1][:a.N*a.C*a.H*a.W])
		refIm2col(a, b, true)
	})
	// bias, y -> y + bias per channel
	biasNCHW = defKernel("bias_nchw", 2, nciLaunch, func(_ *Ref, _ Instr, a NCIArgs, b [][]float32) {
		for i := 0; i < a.size(); i++ {
			b[1][i] += b[0][(i/a.Inner)%a.C]
		}
	})
	// dy -> per-channel sums: one block per channel
	channelSum = defKernel("channel_sum", 2, func(a NCIArgs) Dim { return perBlock(a.C) }, func(_ *Ref, _ Instr, a NCIArgs, b [][]float32) {
		forChannels(a, func(ch int, at func(func(o int))) {
			var s float64
			at(func(o int) { s += float64(b[0][o]) })
			b[1][ch] = float32(s)
		})
	})
)

func refIm2col(a Im2colArgs, b [][]float32, back bool) {
	p, rows := a.OH*a.OW, a.C*a.KH*a.KW
	for bi := 0; bi < a.N; bi++ {
		for rr := 0; rr < rows; rr++ {
			kx, ky, ch := rr%a.KW, (rr/a.KW)%a.KH, rr/(a.KW*a.KH)
			for q := 0; q < p; q++ {
				ox, oy := q%a.OW, q/a.OW
				iy, ix := oy*a.SH-a.PH+ky, ox*a.SW-a.PW+kx
				ci := (bi*rows+rr)*p + q
				inside := iy >= 0 && iy < a.H && ix >= 0 && ix < a.W
				xi := ((bi*a.C+ch)*a.H+iy)*a.W + ix
				if !back {
					b[1][ci] = 0
					if inside {
						b[1][ci] = b[0][xi]
					}
				} else if inside {
					b[1][xi] += b[0][ci]
				}
			}
		}
	}
}

// refGemm is the "gemm" instruction (a cuBLAS call on the device).
func refGemm(r *Ref, in Instr) error {
	g, err := DecodeGemm(in.Ints)
	if err != nil {
		return err
	}
	ta, tb := blas.NoTrans, blas.NoTrans
	if g.TransA {
		ta = blas.Trans
	}
	if g.TransB {
		tb = blas.Trans
	}
	A, B, C := r.gemmOperand(in.Bufs[0]), r.gemmOperand(in.Bufs[1]), r.whole(in.Bufs[2])
	for bi := 0; bi < g.Batch; bi++ {
		gonum.Implementation{}.Sgemm(ta, tb, g.M, g.N, g.K, float32(in.Floats[0]),
			A[g.AOff+bi*g.StrideA:], g.LDA, B[g.BOff+bi*g.StrideB:], g.LDB, float32(in.Floats[1]), C[g.COff+bi*g.StrideC:], g.LDC)
	}
	return nil
}

// gemmOperand is a GEMM input from buffer id's offset on: the arena, or
// the float32 values of a bf16 buffer (exact), which the float32 GEMM
// then multiplies exactly and sums in float32, as the tensor cores do.
func (r *Ref) gemmOperand(id int) []float32 {
	b := r.S.Bufs[id]
	if !b.BF16 {
		return r.whole(id)
	}
	return bf16Floats(r.buf(b), b.Elems)
}

type conv struct {
	N, C, H, W, F, KH, KW, SH, SW, PH, PW, G, OH, OW int
}

func (c conv) kg() int      { return c.C / c.G * c.KH * c.KW }
func (c conv) fg() int      { return c.F / c.G }
func (c conv) p() int       { return c.OH * c.OW }
func (c conv) colRows() int { return c.C * c.KH * c.KW }
func (c conv) pointwise() bool {
	return c.KH == 1 && c.KW == 1 && c.SH == 1 && c.SW == 1 && c.PH == 0 && c.PW == 0
}
func (c conv) im2col() Im2colArgs {
	return Im2colArgs{N: c.N, C: c.C, H: c.H, W: c.W, KH: c.KH, KW: c.KW, SH: c.SH, SW: c.SW, PH: c.PH, PW: c.PW, OH: c.OH, OW: c.OW}
}

func convOf(xs, ws []int, p ops.ConvParams) conv {
	c := conv{N: xs[0], C: xs[1], H: xs[2], W: xs[3], F: ws[0], KH: ws[2], KW: ws[3],
		SH: max(p.StrideH, 1), SW: max(p.StrideW, 1), PH: p.PadH, PW: p.PadW, G: max(p.Groups, 1)}
	c.OH = ops.ConvOutputSize(c.H, c.KH, c.SH, c.PH)
	c.OW = ops.ConvOutputSize(c.W, c.KW, c.SW, c.PW)
	return c
}

// columns returns the im2col buffer of x for c (x itself when pointwise),
// bf16 in a bf16 step.
func (l *lowerer) columns(c conv, x int, n *gorgonia.Node) int {
	if c.pointwise() {
		col, _ := l.gemmOperand(x, n)
		return col
	}
	name, size := nodeName(n)+"/col", c.N*c.colRows()*c.p()
	if l.mixed() {
		col := l.halfBuf(name, size)
		k := im2colBF16
		if l.s.Bufs[x].BF16 {
			k = im2colBF16BF16
		}
		l.emit(k.instr(c.im2col(), []int{x, col}, []int{col}), n)
		return col
	}
	col := l.scratch(name, size)
	l.emit(im2col.instr(c.im2col(), []int{x, col}, []int{col}), n)
	return col
}

// (x, w[, b]) -> y
func lowerConv(l *lowerer, n *gorgonia.Node, d ops.Desc, in []int) (int, error) {
	ch := graph.Children(n)
	c := convOf(shapeOf(ch[0]), shapeOf(ch[1]), d.Conv)
	y, stored := -1, -1
	if l.storesBF16(n) {
		stored, y = l.halfOut(n)
	} else {
		y = l.out(n)
	}
	if a, ok := l.direct(c, false); ok {
		l.emitDirect(a, in[0], in[1], y, n)
	} else if err := l.convGEMM(c, in[0], in[1], y, n); err != nil {
		return 0, err
	}
	if d.Bias {
		l.emit(biasNCHW.instr(NCIArgs{N: c.N, C: c.F, Inner: c.p()}, []int{in[2], y}, []int{y}), n)
	}
	if stored >= 0 {
		l.roundOut(y, stored, n)
		return stored, nil
	}
	return y, nil
}

// convGEMM emits y = w * columns(x), one GEMM per group.
func (l *lowerer) convGEMM(c conv, x, wbuf, y int, n *gorgonia.Node) error {
	col := l.columns(c, x, n)
	w, woff := l.gemmOperand(wbuf, n)
	for gi := 0; gi < c.G; gi++ {
		ga := GemmArgs{M: c.fg(), N: c.p(), K: c.kg(), LDA: c.kg(), LDB: c.p(), LDC: c.p(), Batch: c.N,
			StrideA: 0, StrideB: c.colRows() * c.p(), StrideC: c.F * c.p(),
			AOff: woff + gi*c.fg()*c.kg(), BOff: gi * c.kg() * c.p(), COff: gi * c.fg() * c.p()}
		if err := l.gemm(ga, 1, 0, w, col, y, n); err != nil {
			return err
		}
	}
	return nil
}

// (w, dy) -> dx: dcol = Wᵀ·dy per image and group, col2im.
func lowerConvData(l *lowerer, n *gorgonia.Node, d ops.Desc, in []int) (int, error) {
	ch := graph.Children(n)
	c := convOf(shapeOf(n), shapeOf(ch[0]), d.Conv)
	dx := l.out(n)
	if a, ok := l.direct(c, true); ok {
		l.emitDirect(a, in[1], in[0], dx, n)
		return dx, nil
	}
	dcol := dx
	if !c.pointwise() {
		dcol = l.scratch(nodeName(n)+"/dcol", c.N*c.colRows()*c.p())
	}
	w, woff := l.gemmOperand(in[0], n)
	dy, _ := l.gemmOperand(in[1], n)
	for gi := 0; gi < c.G; gi++ {
		ga := GemmArgs{TransA: true, M: c.kg(), N: c.p(), K: c.fg(), LDA: c.kg(), LDB: c.p(), LDC: c.p(), Batch: c.N,
			StrideA: 0, StrideB: c.F * c.p(), StrideC: c.colRows() * c.p(),
			AOff: woff + gi*c.fg()*c.kg(), BOff: gi * c.fg() * c.p(), COff: gi * c.kg() * c.p()}
		if err := l.gemm(ga, 1, 0, w, dy, dcol, n); err != nil {
			return 0, err
		}
	}
	if !c.pointwise() {
		l.emit(col2im.instr(c.im2col(), []int{dcol, dx}, []int{dx}), n)
	}
	return dx, nil
}

// (x, dy) -> dw: per image dy·colᵀ into partial sums, then their sum.
func lowerConvFilter(l *lowerer, n *gorgonia.Node, d ops.Desc, in []int) (int, error) {
	ch := graph.Children(n)
	c := convOf(shapeOf(ch[0]), shapeOf(n), d.Conv)
	dw := l.out(n)
	col := l.columns(c, in[0], n)
	dy, _ := l.gemmOperand(in[1], n)
	part := l.scratch(nodeName(n)+"/partial", c.N*c.F*c.kg())
	for gi := 0; gi < c.G; gi++ {
		ga := GemmArgs{TransB: true, M: c.fg(), N: c.kg(), K: c.p(), LDA: c.p(), LDB: c.p(), LDC: c.kg(), Batch: c.N,
			StrideA: c.F * c.p(), StrideB: c.colRows() * c.p(), StrideC: c.F * c.kg(),
			AOff: gi * c.fg() * c.p(), BOff: gi * c.kg() * c.p(), COff: gi * c.fg() * c.kg()}
		if err := l.gemm(ga, 1, 0, dy, col, part, n); err != nil {
			return 0, err
		}
	}
	l.emit(sumRows.instr(RowsArgs{Rows: c.N, Cols: c.F * c.kg()}, []int{part, dw}, []int{dw}), n)
	return dw, nil
}

// (dy) -> db
func lowerConvBias(l *lowerer, n *gorgonia.Node, _ ops.Desc, in []int) (int, error) {
	db := l.out(n)
	l.emit(channelSum.instr(nci(shapeOf(graph.Children(n)[0])), []int{in[0], db}, []int{db}), n)
	return db, nil
}
