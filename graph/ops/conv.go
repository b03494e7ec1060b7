package ops

import (
	"fmt"
	"github.com/eraserelu/eraserelu/graph/ops/cpu"
	"hash"
	"sync"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ConvParams are the hyper-parameters of a 2-D convolution besides its
// kernel size (which the filter tensor carries). Zero stride means 1, zero
// Groups means 1.
type ConvParams struct{ StrideH, StrideW, PadH, PadW, Groups int }

// normalized replaces the zero values by their defaults.
func (p ConvParams) normalized() ConvParams {
	if p.StrideH == 0 {
		p.StrideH = 1
	}
	if p.StrideW == 0 {
		p.StrideW = 1
	}
	if p.Groups == 0 {
		p.Groups = 1
	}
	return p
}

func (p ConvParams) String() string {
	return fmt.Sprintf("stride=(%d,%d) pad=(%d,%d) groups=%d", p.StrideH, p.StrideW, p.PadH, p.PadW, p.Groups)
}

// ConvOutputSize is the output extent of a convolution or pooling window of
// size kernel sliding with stride over in input positions padded by pad on
// both sides: (in + 2*pad - kernel)/stride + 1, rounded down (PyTorch's
// floor mode). Zero stride means 1. A result below 1 means the kernel does
// not fit into the padded input.
func ConvOutputSize(in, kernel, stride, pad int) int {
	if stride == 0 {
		stride = 1
	}
	if in+2*pad < kernel || stride < 0 {
		return 0
	}
	return (in+2*pad-kernel)/stride + 1
}

// convGeometry checks an input shape xs (N,C,H,W) and filter shape ws
// (F,C/G,KH,KW) against p (normalized) and returns the geometry.
func convGeometry(xs, ws tensor.Shape, p ConvParams) (convGeom, error) {
	if len(xs) != 4 {
		return convGeom{}, fmt.Errorf("Conv2D: input must be (N,C,H,W), got shape %v", xs)
	}
	if len(ws) != 4 {
		return convGeom{}, fmt.Errorf("Conv2D: filter must be (F,C/groups,KH,KW), got shape %v", ws)
	}
	g := convGeom{N: xs[0], C: xs[1], H: xs[2], W: xs[3], F: ws[0], KH: ws[2], KW: ws[3],
		SH: p.StrideH, SW: p.StrideW, PH: p.PadH, PW: p.PadW, G: p.Groups}
	switch {
	case g.SH < 1 || g.SW < 1:
		return g, fmt.Errorf("Conv2D: strides must be positive, got %v", p)
	case g.PH < 0 || g.PW < 0:
		return g, fmt.Errorf("Conv2D: paddings must not be negative, got %v", p)
	case g.G < 1:
		return g, fmt.Errorf("Conv2D: groups must be positive, got %v", p)
	case g.C%g.G != 0 || g.F%g.G != 0:
		return g, fmt.Errorf("Conv2D: input channels %d (input %v) and filters %d (filter %v) must both be divisible by groups %d", g.C, xs, g.F, ws, g.G)
	case ws[1] != g.C/g.G:
		return g, fmt.Errorf("Conv2D: filter %v has %d input channels, want C/groups = %d/%d = %d (input %v)", ws, ws[1], g.C, g.G, g.C/g.G, xs)
	case g.N < 1 || g.C < 1 || g.H < 1 || g.W < 1 || g.F < 1 || g.KH < 1 || g.KW < 1:
		return g, fmt.Errorf("Conv2D: empty input %v or filter %v", xs, ws)
	case g.KH > g.H+2*g.PH || g.KW > g.W+2*g.PW:
		return g, fmt.Errorf("Conv2D: kernel %dx%d (filter %v) larger than the padded input %dx%d (input %v, %v)",
			g.KH, g.KW, ws, g.H+2*g.PH, g.W+2*g.PW, xs, p)
	}
	g.OH = ConvOutputSize(g.H, g.KH, g.SH, g.PH)
	g.OW = ConvOutputSize(g.W, g.KW, g.SW, g.PW)
	return g, nil
}

// Conv2DOp is a 2-D cross-correlation (PyTorch's Conv2d), optionally grouped
// and with bias, as one node. Inputs: x (N,C,H,W), w (F,C/G,KH,KW) and, when
// HasBias, b (F). Output (N,F,OH,OW).
//
// Kernels, float32 on CPUs with AVX-512: stride-1 "same" and stride-2
// convolutions run on the direct kernels (conv_direct.go: no im2col, no
// GEMM packing, the bias or a fused epilogue applied in registers); 3x3
// stride-1 ones on 8/16/32-wide planes on Winograd F(2x2,3x3)
// (conv_winograd.go) for the input and filter gradients and fused
// inference. Everything else (float64, other geometries, other CPUs, the
// purego build): per image, im2col into a workspace (bulk shifted copies for
// stride-1 "same" and stride-2 convolutions), then one GEMM per group
// straight into the op's output buffer, bias added in place; 1x1 stride-1
// unpadded convolutions skip im2col. Images are split across GOMAXPROCS
// workers, each with its own workspace and single-threaded GEMMs (OpenBLAS
// is held at one thread meanwhile). The workspace is one arena per program
// (its Env), shared by its conv ops, as they run one at a time.
//
// Backward is three separate ops, so Gorgonia computes only those needed:
// the input gradient (for stride 1 a forward convolution of dY with the
// flipped, transposed filters; strided float32 ones on the direct kernels
// one stride-1 convolution per stride phase, conv_phase.go; otherwise
// Wᵀ·dY per image and col2im), the
// filter gradient (direct or Winograd kernels, or cols·dYᵀ per image into
// per-worker partial sums, columns recomputed from x rather than kept from
// the forward pass) and the bias gradient (sums of dY).
type Conv2DOp struct {
	noCommon
	p ConvParams
	withBias
	id uint64
	outBuf
	withEnv
	wg     sync.WaitGroup
	f32    convFwd[float32]
	f64    convFwd[float64]
	direct convDirect
	// stats, when a batch norm reads the output (FuseConvBatchStats):
	// where the training forward collects its batch statistics
	stats *convStats
}

// Conv2D convolves x (N,C,H,W) with w (F, C/Groups, KH, KW), PyTorch layout,
// adding b (F) when b is not nil: output (N,F,OH,OW) with OH =
// ConvOutputSize(H, KH, StrideH, PadH), likewise OW. Grouped convolution
// (ResNeXt) splits channels and filters into Groups equal parts.
func Conv2D(x, w, b *gorgonia.Node, p ConvParams) (*gorgonia.Node, error) {
	p = p.normalized()
	if x == nil || w == nil {
		return nil, fmt.Errorf("Conv2D: nil input or filter")
	}
	g, err := convGeometry(x.Shape(), w.Shape(), p)
	if err != nil {
		return nil, err
	}
	op := &Conv2DOp{p: p, withBias: withBias{bias: b != nil, rank: 4}, id: nextID()}
	if b == nil {
		return gorgonia.ApplyOp(op, x, w)
	}
	if bs := b.Shape(); len(bs) != 1 || bs[0] != g.F {
		return nil, fmt.Errorf("Conv2D: bias must have shape (%d) for filter %v, got %v", g.F, w.Shape(), bs)
	}
	return gorgonia.ApplyOp(op, x, w, b)
}

// Params returns the stride, padding and groups (zero values replaced by 1).
func (op *Conv2DOp) Params() ConvParams { return op.p }

func (op *Conv2DOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	if len(in) < 2 {
		return nil, fmt.Errorf("Conv2D: expected input and filter shapes, got %d", len(in))
	}
	xs, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	ws, err := shapeOf(in[1])
	if err != nil {
		return nil, err
	}
	g, err := convGeometry(xs, ws, op.p)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{g.N, g.F, g.OH, g.OW}, nil
}

func (op *Conv2DOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "Conv2D(%d,%d,%d,%d,%d,%t)#%d", op.p.StrideH, op.p.StrideW, op.p.PadH, op.p.PadW, op.p.Groups, op.bias, op.id)
}
func (op *Conv2DOp) Hashcode() uint32 { return hashOf(op) }
func (op *Conv2DOp) String() string {
	if op.p.Groups > 1 {
		return fmt.Sprintf("Conv2D(s%dx%d p%dx%d g%d)", op.p.StrideH, op.p.StrideW, op.p.PadH, op.p.PadW, op.p.Groups)
	}
	return fmt.Sprintf("Conv2D(s%dx%d p%dx%d)", op.p.StrideH, op.p.StrideW, op.p.PadH, op.p.PadW)
}

// convArgs converts the values of an op call without allocating: want
// values, all float tensors of one dtype.
func convArgs(name string, want int, vs []gorgonia.Value, out []*tensor.Dense) error {
	if len(vs) != want {
		return fmt.Errorf("%s: expected %d inputs, got %d", name, want, len(vs))
	}
	for i, v := range vs {
		d, err := argDense(name, i, v)
		if err != nil {
			return err
		}
		if i > 0 && d.Dtype() != out[0].Dtype() {
			return fmt.Errorf("%s: input %d has dtype %v, input 0 has %v", name, i, d.Dtype(), out[0].Dtype())
		}
		out[i] = d
	}
	return nil
}

func (op *Conv2DOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	var in [3]*tensor.Dense
	if err := convArgs("Conv2D", op.Arity(), vs, in[:]); err != nil {
		return nil, err
	}
	x, w, b := in[0], in[1], in[2]
	g, err := convGeometry(x.Shape(), w.Shape(), op.p)
	if err != nil {
		return nil, err
	}
	if b != nil && (b.Dims() != 1 || b.Shape()[0] != g.F) {
		return nil, fmt.Errorf("Conv2D: bias must have shape (%d) for filter %v, got %v", g.F, w.Shape(), b.Shape())
	}
	y := op.out.get(x.Dtype(), g.N, g.F, g.OH, g.OW)
	st := op.stats
	if st != nil && st.mode.Training() {
		st.size(g.N, g.F, g.p())
		st.simd = op.kern().k.simd()
	} else {
		st = nil
	}
	if x.Dtype() == tensor.Float32 {
		ep := convEpilogue[float32]{stats: st}
		if b != nil {
			ep.shift = b.Float32s()
		}
		convForward(&op.f32, &op.direct, &op.wg, op.kern(), g, x.Float32s(), w.Float32s(), ep, y.Float32s(), op.kern().k.WinogradTrainForward)
	} else {
		ep := convEpilogue[float64]{stats: st}
		if b != nil {
			ep.shift = b.Float64s()
		}
		convForward(&op.f64, &op.direct, &op.wg, op.kern(), g, x.Float64s(), w.Float64s(), ep, y.Float64s(), false)
	}
	if st != nil {
		st.fresh = true
	}
	return y, nil
}

func (op *Conv2DOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = true
	}
	return d
}

func (op *Conv2DOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if len(inputs) != op.Arity() {
		return nil, fmt.Errorf("Conv2D backward: expected %d inputs, got %d", op.Arity(), len(inputs))
	}
	x, w := inputs[0], inputs[1]
	dx, err := gorgonia.ApplyOp(&conv2DDataGradOp{p: op.p, xshape: x.Shape().Clone(), id: nextID(), withEnv: op.withEnv}, w, grad)
	if err != nil {
		return nil, fmt.Errorf("Conv2D input gradient: %w", err)
	}
	dw, err := gorgonia.ApplyOp(&conv2DFilterGradOp{p: op.p, wshape: w.Shape().Clone(), id: nextID(), withEnv: op.withEnv}, x, grad)
	if err != nil {
		return nil, fmt.Errorf("Conv2D filter gradient: %w", err)
	}
	if !op.bias {
		return gorgonia.Nodes{dx, dw}, nil
	}
	db, err := gorgonia.ApplyOp(&conv2DBiasGradOp{id: nextID(), withEnv: op.withEnv}, grad)
	if err != nil {
		return nil, fmt.Errorf("Conv2D bias gradient: %w", err)
	}
	return gorgonia.Nodes{dx, dw, db}, nil
}

// convPlan is how one kernel call splits its work.
type convPlan struct {
	workers int
	batch   int // images per GEMM
	ld      int // row stride of the columns (and of tmp): batch*P + Kernels.ColPad
	// per-worker workspace sizes: partial sums, columns, gathered or
	// GEMM-output rows of batch images, im2col scratch
	accSize, colSize, tmpSize, scrSize int
}

// convMakePlan plans a kernel over g's images: all workers when the work
// pays for it; images per GEMM enough that a GEMM is about k.TargetCols
// wide, at most a worker's share; acc elements of partial sums per worker.
// The direct kernels need no columns.
func convMakePlan(g *convGeom, acc int, direct bool, k *Kernels) convPlan {
	p := convPlan{workers: cpu.Workers(g.N, g.macs(), k.MinParallelWork), batch: 1, accSize: acc}
	if g.pointwise() {
		return p
	}
	if direct {
		// no columns: only the phase split's scratch, for several images
		// per call of the filter-gradient kernel when acc > 0
		if acc > 0 {
			perWorker := (g.N + p.workers - 1) / p.workers
			p.batch = max(1, min(perWorker, k.DirectWGradImageBytes/(4*(g.C*g.hw()+g.F*g.p()))))
		}
		p.scrSize = p.batch * g.im2colScratch()
		return p
	}
	perWorker := (g.N + p.workers - 1) / p.workers
	p.batch = max(1, min(k.TargetCols/g.p(), perWorker))
	p.ld = p.batch*g.p() + k.ColPad
	p.colSize = g.kg() * p.ld
	if p.batch > 1 {
		p.tmpSize = g.fg() * p.ld
	}
	p.scrSize = g.im2colScratch()
	return p
}

func (p *convPlan) per() int { return p.accSize + p.colSize + p.tmpSize + p.scrSize }

// convWorkspace splits worker wk's part of ws into partial sums, columns,
// tmp and im2col scratch.
func convWorkspace[T Float](ws []T, p *convPlan, wk int) (acc, col, tmp, scr []T) {
	w := ws[wk*p.per() : (wk+1)*p.per()]
	acc, w = w[:p.accSize], w[p.accSize:]
	col, w = w[:p.colSize], w[p.colSize:]
	tmp, scr = w[:p.tmpSize], w[p.tmpSize:]
	return acc, col, tmp, scr
}

// convFwd is the forward kernel's arguments, a convTask over images.
type convFwd[T Float] struct {
	g       convGeom
	plan    convPlan
	x, w, y []T
	ep      convEpilogue[T]
	ws      []T
	d       *convDirect   // the direct kernels' plan, nil on the im2col+GEMM path
	wino    *convWinograd // the Winograd kernel's plan, nil when it does not apply
}

// convForward computes y = ep(conv(x, w)) for geometry g with e's kernels:
// the Winograd kernel when winograd is set and it computes g, else the
// direct kernels when d says they compute g, else im2col+GEMM.
func convForward[T Float](t *convFwd[T], d *convDirect, wg *sync.WaitGroup, e *Env, g convGeom, x, w []T, ep convEpilogue[T], y []T, winograd bool) {
	k := &e.k
	if w32, ok := any(w).([]float32); ok && winograd && d.wino.prepare(&g, k) {
		plan := convMakePlan(&g, 0, true, k)
		plan.batch = d.wino.images((g.N+plan.workers-1)/plan.workers, k)
		vt, mt := d.wino.scratch(plan.batch)
		plan.scrSize = vt + mt
		d.wino.transformFilters(w32)
		ws := scratchLock[T](e, plan.workers*plan.per())
		defer e.scratchUnlock()
		*t = convFwd[T]{g: g, plan: plan, x: x, w: w, y: y, ep: ep, ws: ws, wino: &d.wino}
		cpu.Parallel(t, wg, plan.workers, g.N, false)
		*t = convFwd[T]{}
		return
	}
	direct := false
	if w32, ok := any(w).([]float32); ok && d.prepare(&g, k) {
		d.packFilters(w32)
		direct = true
	}
	plan := convMakePlan(&g, 0, direct, k)
	ws := scratchLock[T](e, plan.workers*plan.per())
	defer e.scratchUnlock()
	*t = convFwd[T]{g: g, plan: plan, x: x, w: w, y: y, ep: ep, ws: ws}
	if direct {
		t.d = d
	}
	cpu.Parallel(t, wg, plan.workers, g.N, !direct)
	*t = convFwd[T]{}
}

func (t *convFwd[T]) Run(wk, lo, hi int) {
	if t.wino != nil {
		t.runWinograd(wk, lo, hi)
		return
	}
	if t.d != nil {
		t.runDirect(wk, lo, hi)
		return
	}
	g := &t.g
	P, Cg, Fg, Kg, HW := g.p(), g.cg(), g.fg(), g.kg(), g.hw()
	xImg, yImg := g.C*HW, g.F*P
	_, col, tmp, scr := convWorkspace(t.ws, &t.plan, wk)
	ld := t.plan.ld
	ep := &t.ep
	for n0 := lo; n0 < hi; n0 += t.plan.batch {
		nb := min(t.plan.batch, hi-n0)
		for gi := 0; gi < g.G; gi++ {
			wg := t.w[gi*Fg*Kg:]
			if g.pointwise() {
				for n := n0; n < n0+nb; n++ {
					yg := t.y[n*yImg+gi*Fg*P : n*yImg+(gi+1)*Fg*P]
					cpu.Gemm(false, false, Fg, P, Cg, 1, wg, Kg, t.x[n*xImg+gi*Cg*HW:], P, 0, yg, P)
					convApplyEpilogue(yg, yg, P, ep, convResAt(ep, n*yImg+gi*Fg*P), gi*Fg, Fg, P)
				}
				t.collect(n0, nb, gi)
				continue
			}
			for j := 0; j < nb; j++ {
				im2col(col[j*P:], ld, t.x[(n0+j)*xImg+gi*Cg*HW:], Cg, g, scr)
			}
			if nb == 1 {
				yg := t.y[n0*yImg+gi*Fg*P : n0*yImg+(gi+1)*Fg*P]
				cpu.Gemm(false, false, Fg, P, Kg, 1, wg, Kg, col, ld, 0, yg, P)
				convApplyEpilogue(yg, yg, P, ep, convResAt(ep, n0*yImg+gi*Fg*P), gi*Fg, Fg, P)
				t.collect(n0, nb, gi)
				continue
			}
			cpu.Gemm(false, false, Fg, nb*P, Kg, 1, wg, Kg, col, ld, 0, tmp, ld)
			for j := 0; j < nb; j++ {
				off := (n0+j)*yImg + gi*Fg*P
				convApplyEpilogue(t.y[off:], tmp[j*P:], ld, ep, convResAt(ep, off), gi*Fg, Fg, P)
			}
			t.collect(n0, nb, gi)
		}
	}
}

// collect sums the batch statistics of group gi's output planes of images
// n0..n0+nb-1, just written, when the epilogue asks for them.
func (t *convFwd[T]) collect(n0, nb, gi int) {
	s := t.ep.stats
	if s == nil {
		return
	}
	g := &t.g
	Fg, P := g.fg(), g.p()
	for n := n0; n < n0+nb; n++ {
		i0 := n*g.F + gi*Fg
		convCollectStats(s, t.y[i0*P:(i0+Fg)*P], i0, Fg)
	}
}

// convResAt is the epilogue's residual from element off on, or nil.
func convResAt[T Float](ep *convEpilogue[T], off int) []T {
	if ep.res == nil {
		return nil
	}
	return ep.res[off:]
}

// runWinograd is run on the Winograd kernel (float32 only), plan.batch
// images per call.
func (t *convFwd[T]) runWinograd(wk, lo, hi int) {
	g, w := &t.g, t.wino
	x, y := any(t.x).([]float32), any(t.y).([]float32)
	scale, shift, res := any(t.ep.scale).([]float32), any(t.ep.shift).([]float32), any(t.ep.res).([]float32)
	_, _, _, scr := convWorkspace(any(t.ws).([]float32), &t.plan, wk)
	nvt, _ := w.scratch(t.plan.batch)
	vt, mt := scr[:nvt], scr[nvt:]
	P, Cg, Fg, HW := g.p(), g.cg(), g.fg(), g.hw()
	xImg, yImg := g.C*HW, g.F*P
	per := len(w.u) / g.G
	for n0 := lo; n0 < hi; n0 += t.plan.batch {
		nb := min(t.plan.batch, hi-n0)
		for gi := 0; gi < g.G; gi++ {
			off := n0*yImg + gi*Fg*P
			var sc, sh, r []float32
			if scale != nil {
				sc = scale[gi*Fg:]
			}
			if shift != nil {
				sh = shift[gi*Fg:]
			}
			if res != nil {
				r = res[off:]
			}
			var stk, st1, st2 []float64
			if s := t.ep.stats; s != nil {
				i0 := n0*g.F + gi*Fg
				stk, st1, st2 = s.k[i0:], s.s1[i0:], s.s2[i0:]
			}
			convWinogradFwd32(w, x[n0*xImg+gi*Cg*HW:], xImg, w.u[gi*per:(gi+1)*per], Fg, y[off:], yImg,
				sc, sh, r, t.ep.relu, nb, vt, mt, stk, st1, st2, g.F)
		}
	}
}

// runDirect is run on the direct kernels (float32 only): per image and
// group, the stride phases split first for a stride-2 convolution.
func (t *convFwd[T]) runDirect(wk, lo, hi int) {
	g, d := &t.g, t.d
	x, y := any(t.x).([]float32), any(t.y).([]float32)
	scale, shift, res := any(t.ep.scale).([]float32), any(t.ep.shift).([]float32), any(t.ep.res).([]float32)
	ws := any(t.ws).([]float32)
	_, _, _, scr := convWorkspace(ws, &t.plan, wk)
	P, Cg, Fg, HW := g.p(), g.cg(), g.fg(), g.hw()
	xImg, yImg := g.C*HW, g.F*P
	per := len(d.wp) / g.G
	for n := lo; n < hi; n++ {
		for gi := 0; gi < g.G; gi++ {
			src := x[n*xImg+gi*Cg*HW:][:Cg*HW]
			if d.phase {
				im2colSplitPhases(scr, src, Cg, g.H, g.W)
				src = scr
			}
			off := n*yImg + gi*Fg*P
			var sc, sh, r []float32
			if scale != nil {
				sc = scale[gi*Fg:]
			}
			if shift != nil {
				sh = shift[gi*Fg:]
			}
			if res != nil {
				r = res[off:]
			}
			convDirectFwd32(d, src, d.wp[gi*per:(gi+1)*per], Fg, y[off:off+Fg*P], sc, sh, r, t.ep.relu)
			t.collect(n, 1, gi)
		}
	}
}

// convGather copies rows f < fg of length p of images n0..n0+nb-1 of the
// (N, ·, p) array src, starting at row f0, side by side into dst (rows ld
// apart); it returns the slice holding them. One image needs no copy.
func convGather[T Float](dst, src []T, n0, nb, imgSize, f0, fg, p, ld int) ([]T, int) {
	if nb == 1 {
		return src[n0*imgSize+f0*p:], p
	}
	for j := 0; j < nb; j++ {
		for f := 0; f < fg; f++ {
			copy(dst[f*ld+j*p:][:p], src[(n0+j)*imgSize+(f0+f)*p:])
		}
	}
	return dst, ld
}
