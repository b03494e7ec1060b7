package ops

import (
	"fmt"
	"github.com/eraserelu/eraserelu/graph/ops/cpu"
	"hash"
	"sync"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// conv2DDataGradOp computes the gradient of a convolution with respect to
// its input from the filter w and the output gradient dy. Stride-1
// convolutions do it as a forward convolution of dy with the filters
// flipped and transposed (padding KH-1-PH, KW-1-PW), so im2col replaces the
// slower scatter-add of col2im; strided float32 ones, on the direct
// kernels, as one stride-1 convolution per stride phase of the input
// (conv_phase.go); other convolutions compute, per image and group,
// dcols = W_gᵀ·dY_g with one GEMM and add them back with col2im.
type conv2DDataGradOp struct {
	noCommon
	nonDiff
	p      ConvParams
	xshape tensor.Shape // forward input shape; the batch size is taken from dy
	xs     tensor.Shape // xshape with dy's batch size, reused to not allocate
	id     uint64
	outBuf
	withEnv
	flip   buffer // flipped, transposed filters for the stride-1 path
	wg     sync.WaitGroup
	f32    convBwdData[float32]
	f64    convBwdData[float64]
	fwd32  convFwd[float32]
	fwd64  convFwd[float64]
	direct convDirect
	phase  convPhaseGrad
	ph32   convBwdPhase
}

func (op *conv2DDataGradOp) Arity() int { return 2 }
func (op *conv2DDataGradOp) Type() hm.Type {
	t4 := tensorType(4, hm.TypeVariable('a'))
	return fnType(t4, t4, t4)
}

// geometry checks w and dy against the forward input shape.
func (op *conv2DDataGradOp) geometry(ws, dys tensor.Shape) (convGeom, error) {
	if len(dys) != 4 {
		return convGeom{}, fmt.Errorf("Conv2D input gradient: output gradient must be 4-D, got %v", dys)
	}
	if op.xs == nil {
		op.xs = op.xshape.Clone()
	}
	op.xs[0] = dys[0]
	g, err := convGeometry(op.xs, ws, op.p)
	if err != nil {
		return g, err
	}
	if dys[1] != g.F || dys[2] != g.OH || dys[3] != g.OW {
		return g, fmt.Errorf("Conv2D input gradient: output gradient %v, want (%d,%d,%d,%d)", dys, g.N, g.F, g.OH, g.OW)
	}
	return g, nil
}

func (op *conv2DDataGradOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	ws, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	dys, err := shapeOf(in[1])
	if err != nil {
		return nil, err
	}
	g, err := op.geometry(ws, dys)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{g.N, g.C, g.H, g.W}, nil
}
func (op *conv2DDataGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "Conv2DDataGrad(%v,%v)#%d", op.p, op.xshape, op.id)
}
func (op *conv2DDataGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *conv2DDataGradOp) String() string   { return "Conv2DDataGrad" }

// convTransposedGeometry is the forward convolution that computes the input
// gradient of a stride-1 convolution g, and whether g qualifies under k.
func convTransposedGeometry(g convGeom, k *Kernels) (convGeom, bool) {
	if !k.DataGradViaForward || g.SH != 1 || g.SW != 1 || g.PH > g.KH-1 || g.PW > g.KW-1 || g.pointwise() {
		return g, false
	}
	return convGeom{N: g.N, C: g.F, H: g.OH, W: g.OW, F: g.C, KH: g.KH, KW: g.KW,
		SH: 1, SW: 1, PH: g.KH - 1 - g.PH, PW: g.KW - 1 - g.PW, G: g.G, OH: g.H, OW: g.W}, true
}

// convFlipFilters writes wt[g][c][f][kh][kw] = w[g][f][c][KH-1-kh][KW-1-kw].
func convFlipFilters[T Float](wt, w []T, g *convGeom) {
	Cg, Fg, KK := g.cg(), g.fg(), g.KH*g.KW
	for gi := 0; gi < g.G; gi++ {
		for c := 0; c < Cg; c++ {
			for f := 0; f < Fg; f++ {
				dst := wt[((gi*Cg+c)*Fg+f)*KK:][:KK]
				src := w[((gi*Fg+f)*Cg+c)*KK:][:KK]
				for k := range dst {
					dst[k] = src[KK-1-k]
				}
			}
		}
	}
}

func (op *conv2DDataGradOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	var in [2]*tensor.Dense
	if err := convArgs("Conv2DDataGrad", 2, vs, in[:]); err != nil {
		return nil, err
	}
	w, dy := in[0], in[1]
	g, err := op.geometry(w.Shape(), dy.Shape())
	if err != nil {
		return nil, err
	}
	dt := w.Dtype()
	dx := op.out.get(dt, g.N, g.C, g.H, g.W)
	e := op.kern()
	if tg, ok := convTransposedGeometry(g, &e.k); ok {
		wt := op.flip.get(dt, g.C, g.fg(), g.KH, g.KW)
		if dt == tensor.Float32 {
			convFlipFilters(wt.Float32s(), w.Float32s(), &g)
			convForward(&op.fwd32, &op.direct, &op.wg, e, tg, dy.Float32s(), wt.Float32s(), convEpilogue[float32]{}, dx.Float32s(), true)
		} else {
			convFlipFilters(wt.Float64s(), w.Float64s(), &g)
			convForward(&op.fwd64, &op.direct, &op.wg, e, tg, dy.Float64s(), wt.Float64s(), convEpilogue[float64]{}, dx.Float64s(), false)
		}
		return dx, nil
	}
	if dt == tensor.Float32 && op.phase.prepare(&g, &e.k) {
		convBackwardDataPhases(&op.ph32, &op.phase, &op.wg, e, w.Float32s(), dy.Float32s(), dx.Float32s())
		return dx, nil
	}
	if dt == tensor.Float32 {
		convBackwardData(&op.f32, &op.wg, e, g, w.Float32s(), dy.Float32s(), dx.Float32s())
	} else {
		convBackwardData(&op.f64, &op.wg, e, g, w.Float64s(), dy.Float64s(), dx.Float64s())
	}
	return dx, nil
}

type convBwdData[T Float] struct {
	g         convGeom
	plan      convPlan
	w, dy, dx []T
	ws        []T
}

func convBackwardData[T Float](t *convBwdData[T], wg *sync.WaitGroup, e *Env, g convGeom, w, dy, dx []T) {
	plan := convMakePlan(&g, 0, false, &e.k)
	ws := scratchLock[T](e, plan.workers*plan.per())
	defer e.scratchUnlock()
	*t = convBwdData[T]{g: g, plan: plan, w: w, dy: dy, dx: dx, ws: ws}
	cpu.Parallel(t, wg, plan.workers, g.N, true)
	*t = convBwdData[T]{}
}

func (t *convBwdData[T]) Run(wk, lo, hi int) {
	g := &t.g
	P, Cg, Fg, Kg, HW := g.p(), g.cg(), g.fg(), g.kg(), g.hw()
	xImg, yImg := g.C*HW, g.F*P
	_, col, tmp, scr := convWorkspace(t.ws, &t.plan, wk)
	ld := t.plan.ld
	for n0 := lo; n0 < hi; n0 += t.plan.batch {
		nb := min(t.plan.batch, hi-n0)
		for gi := 0; gi < g.G; gi++ {
			wg := t.w[gi*Fg*Kg:]
			if g.pointwise() {
				for n := n0; n < n0+nb; n++ {
					cpu.Gemm(true, false, Cg, P, Fg, 1, wg, Kg, t.dy[n*yImg+gi*Fg*P:], P, 0, t.dx[n*xImg+gi*Cg*HW:], P)
				}
				continue
			}
			dyg, ldy := convGather(tmp, t.dy, n0, nb, yImg, gi*Fg, Fg, P, ld)
			cpu.Gemm(true, false, Kg, nb*P, Fg, 1, wg, Kg, dyg, ldy, 0, col, ld)
			for j := 0; j < nb; j++ {
				col2im(t.dx[(n0+j)*xImg+gi*Cg*HW:], col[j*P:], ld, Cg, g, scr)
			}
		}
	}
}

// conv2DFilterGradOp computes the gradient of a convolution with respect to
// its filter from the input x and the output gradient dy: per image (or few
// images side by side) and group, dWᵀ_g += cols_g·dY_gᵀ into per-worker
// partial sums, reduced at the end.
type conv2DFilterGradOp struct {
	noCommon
	nonDiff
	p      ConvParams
	wshape tensor.Shape
	id     uint64
	outBuf
	withEnv
	wg     sync.WaitGroup
	f32    convBwdFilter[float32]
	f64    convBwdFilter[float64]
	direct convDirect
}

func (op *conv2DFilterGradOp) Arity() int { return 2 }
func (op *conv2DFilterGradOp) Type() hm.Type {
	t4 := tensorType(4, hm.TypeVariable('a'))
	return fnType(t4, t4, t4)
}

func (op *conv2DFilterGradOp) geometry(xs, dys tensor.Shape) (convGeom, error) {
	g, err := convGeometry(xs, op.wshape, op.p)
	if err != nil {
		return g, err
	}
	if len(dys) != 4 || dys[0] != g.N || dys[1] != g.F || dys[2] != g.OH || dys[3] != g.OW {
		return g, fmt.Errorf("Conv2D filter gradient: output gradient %v, want (%d,%d,%d,%d)", dys, g.N, g.F, g.OH, g.OW)
	}
	return g, nil
}

func (op *conv2DFilterGradOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	xs, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	dys, err := shapeOf(in[1])
	if err != nil {
		return nil, err
	}
	if _, err := op.geometry(xs, dys); err != nil {
		return nil, err
	}
	return op.wshape.Clone(), nil
}
func (op *conv2DFilterGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "Conv2DFilterGrad(%v,%v)#%d", op.p, op.wshape, op.id)
}
func (op *conv2DFilterGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *conv2DFilterGradOp) String() string   { return "Conv2DFilterGrad" }

func (op *conv2DFilterGradOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	var in [2]*tensor.Dense
	if err := convArgs("Conv2DFilterGrad", 2, vs, in[:]); err != nil {
		return nil, err
	}
	x, dy := in[0], in[1]
	g, err := op.geometry(x.Shape(), dy.Shape())
	if err != nil {
		return nil, err
	}
	ws := op.wshape
	dw := op.out.get(x.Dtype(), ws[0], ws[1], ws[2], ws[3])
	if x.Dtype() == tensor.Float32 {
		convBackwardFilter(&op.f32, &op.direct, &op.wg, op.kern(), g, x.Float32s(), dy.Float32s(), dw.Float32s())
	} else {
		convBackwardFilter(&op.f64, &op.direct, &op.wg, op.kern(), g, x.Float64s(), dy.Float64s(), dw.Float64s())
	}
	return dw, nil
}

type convBwdFilter[T Float] struct {
	g     convGeom
	plan  convPlan
	x, dy []T
	ws    []T
	d     *convDirect   // the direct kernel's plan, nil on the im2col+GEMM path
	wino  *convWinograd // the Winograd kernel's plan, or nil
}

func convBackwardFilter[T Float](t *convBwdFilter[T], d *convDirect, wg *sync.WaitGroup, e *Env, g convGeom, x, dy, dw []T) {
	_, f32 := any(x).([]float32)
	k := &e.k
	if f32 && d.wino.prepare(&g, k) {
		w := &d.wino
		plan := convMakePlan(&g, w.wgradAccSize(), true, k)
		plan.batch = w.wgradImages((g.N+plan.workers-1)/plan.workers, k)
		vt, dt := w.wgradScratch(plan.batch)
		plan.scrSize = vt + dt
		ws := scratchLock[T](e, plan.workers*plan.per())
		defer e.scratchUnlock()
		*t = convBwdFilter[T]{g: g, plan: plan, x: x, dy: dy, ws: ws, wino: w}
		cpu.Parallel(t, wg, plan.workers, g.N, false)
		convWinogradWGradFinish(w, ws, plan.per(), plan.workers, dw)
		*t = convBwdFilter[T]{}
		return
	}
	direct := f32 && d.prepare(&g, k)
	acc := g.F * g.kg()
	if direct {
		acc = d.wgradAccSize()
	}
	plan := convMakePlan(&g, acc, direct, k)
	ws := scratchLock[T](e, plan.workers*plan.per())
	defer e.scratchUnlock()
	*t = convBwdFilter[T]{g: g, plan: plan, x: x, dy: dy, ws: ws}
	if direct {
		t.d = d
	}
	cpu.Parallel(t, wg, plan.workers, g.N, !direct)
	Fg, Kg, per := g.fg(), g.kg(), plan.per()
	if direct {
		// dw = sum over workers of acc[wk], laid out as dw
		for i := range dw {
			var s T
			for wk := 0; wk < plan.workers; wk++ {
				s += ws[wk*per+i]
			}
			dw[i] = s
		}
		*t = convBwdFilter[T]{}
		return
	}
	// dw[g][f][k] = sum over workers of acc[wk][g][k][f]
	for gi := 0; gi < g.G; gi++ {
		for f := 0; f < Fg; f++ {
			row := dw[(gi*Fg+f)*Kg:][:Kg]
			for k := range row {
				var s T
				for wk := 0; wk < plan.workers; wk++ {
					s += ws[wk*per+gi*Kg*Fg+k*Fg+f]
				}
				row[k] = s
			}
		}
	}
	*t = convBwdFilter[T]{}
}

func (t *convBwdFilter[T]) Run(wk, lo, hi int) {
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
	acc, col, tmp, scr := convWorkspace(t.ws, &t.plan, wk)
	ld := t.plan.ld
	clear(acc)
	for n0 := lo; n0 < hi; n0 += t.plan.batch {
		nb := min(t.plan.batch, hi-n0)
		for gi := 0; gi < g.G; gi++ {
			accg := acc[gi*Kg*Fg:]
			if g.pointwise() {
				for n := n0; n < n0+nb; n++ {
					cpu.Gemm(false, true, Kg, Fg, P, 1, t.x[n*xImg+gi*Cg*HW:], P, t.dy[n*yImg+gi*Fg*P:], P, 1, accg, Fg)
				}
				continue
			}
			for j := 0; j < nb; j++ {
				im2col(col[j*P:], ld, t.x[(n0+j)*xImg+gi*Cg*HW:], Cg, g, scr)
			}
			dyg, ldy := convGather(tmp, t.dy, n0, nb, yImg, gi*Fg, Fg, P, ld)
			cpu.Gemm(false, true, Kg, Fg, nb*P, 1, col, ld, dyg, ldy, 1, accg, Fg)
		}
	}
}

// runWinograd is run on the Winograd kernel (float32 only), plan.batch
// images per call, into the worker's transformed gradient z.
func (t *convBwdFilter[T]) runWinograd(wk, lo, hi int) {
	g, w := &t.g, t.wino
	x, dy := any(t.x).([]float32), any(t.dy).([]float32)
	z, _, _, scr := convWorkspace(any(t.ws).([]float32), &t.plan, wk)
	clear(z)
	nvt, _ := w.wgradScratch(t.plan.batch)
	vt, dt := scr[:nvt], scr[nvt:]
	P, Cg, Fg, HW := g.p(), g.cg(), g.fg(), g.hw()
	xImg, yImg := g.C*HW, g.F*P
	zg := 16 * Fg * Cg
	for n0 := lo; n0 < hi; n0 += t.plan.batch {
		nb := min(t.plan.batch, hi-n0)
		for gi := 0; gi < g.G; gi++ {
			convWinogradWGrad32(w, x[n0*xImg+gi*Cg*HW:], xImg, dy[n0*yImg+gi*Fg*P:], yImg, Fg, nb, vt, dt, z[gi*zg:(gi+1)*zg])
		}
	}
}

// runDirect is run on the direct kernel (float32 only), plan.batch images
// per call (their stride phases split first for a stride-2 convolution).
func (t *convBwdFilter[T]) runDirect(wk, lo, hi int) {
	g, d := &t.g, t.d
	x, dy := any(t.x).([]float32), any(t.dy).([]float32)
	acc, _, _, scr := convWorkspace(any(t.ws).([]float32), &t.plan, wk)
	clear(acc)
	P, Cg, Fg, HW := g.p(), g.cg(), g.fg(), g.hw()
	xImg, yImg := g.C*HW, g.F*P
	accG := len(acc) / g.G
	for n0 := lo; n0 < hi; n0 += t.plan.batch {
		nb := min(t.plan.batch, hi-n0)
		for gi := 0; gi < g.G; gi++ {
			src, srcImg := x[n0*xImg+gi*Cg*HW:], xImg
			if d.phase {
				for j := 0; j < nb; j++ {
					im2colSplitPhases(scr[j*Cg*HW:], x[(n0+j)*xImg+gi*Cg*HW:][:Cg*HW], Cg, g.H, g.W)
				}
				src, srcImg = scr, Cg*HW
			}
			convDirectWGrad32(d, src, srcImg, dy[n0*yImg+gi*Fg*P:], yImg, Fg, nb, acc[gi*accG:(gi+1)*accG])
		}
	}
}

// conv2DBiasGradOp sums the output gradient over images and pixels: (N,F,OH,OW) -> (F).
type conv2DBiasGradOp struct {
	noCommon
	nonDiff
	id uint64
	outBuf
	withEnv
	wg  sync.WaitGroup
	f32 convBwdBias[float32]
	f64 convBwdBias[float64]
}

func (op *conv2DBiasGradOp) Arity() int { return 1 }
func (op *conv2DBiasGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return fnType(tensorType(4, a), tensorType(1, a))
}
func (op *conv2DBiasGradOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	if len(s) != 4 {
		return nil, fmt.Errorf("Conv2D bias gradient: output gradient must be 4-D, got %v", s)
	}
	return tensor.Shape{s[1]}, nil
}
func (op *conv2DBiasGradOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "Conv2DBiasGrad#%d", op.id) }
func (op *conv2DBiasGradOp) Hashcode() uint32      { return hashOf(op) }
func (op *conv2DBiasGradOp) String() string        { return "Conv2DBiasGrad" }

func (op *conv2DBiasGradOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	var in [1]*tensor.Dense
	if err := convArgs("Conv2DBiasGrad", 1, vs, in[:]); err != nil {
		return nil, err
	}
	dy := in[0]
	s := dy.Shape()
	if len(s) != 4 {
		return nil, fmt.Errorf("Conv2D bias gradient: output gradient must be 4-D, got %v", s)
	}
	db := op.out.get(dy.Dtype(), s[1])
	if dy.Dtype() == tensor.Float32 {
		convBackwardBias(&op.f32, &op.wg, op.kern(), s[0], s[1], s[2]*s[3], dy.Float32s(), db.Float32s())
	} else {
		convBackwardBias(&op.f64, &op.wg, op.kern(), s[0], s[1], s[2]*s[3], dy.Float64s(), db.Float64s())
	}
	return db, nil
}

// convBwdBias sums rows of p elements of an (n, f, p) array into (f),
// per-worker partial sums over the n images.
type convBwdBias[T Float] struct {
	f, p int
	dy   []T
	acc  []T
}

func convBackwardBias[T Float](t *convBwdBias[T], wg *sync.WaitGroup, e *Env, n, f, p int, dy, db []T) {
	workers := cpu.Workers(n, float64(n*f*p)*4, e.k.MinParallelWork)
	acc := scratchLock[T](e, workers*f)
	defer e.scratchUnlock()
	*t = convBwdBias[T]{f: f, p: p, dy: dy, acc: acc}
	cpu.Parallel(t, wg, workers, n, false)
	for j := range db {
		var s T
		for wk := 0; wk < workers; wk++ {
			s += acc[wk*f+j]
		}
		db[j] = s
	}
	*t = convBwdBias[T]{}
}

func (t *convBwdBias[T]) Run(wk, lo, hi int) {
	acc := t.acc[wk*t.f : (wk+1)*t.f]
	clear(acc)
	for n := lo; n < hi; n++ {
		for j := range acc {
			var s T
			for _, v := range t.dy[(n*t.f+j)*t.p : (n*t.f+j+1)*t.p] {
				s += v
			}
			acc[j] += s
		}
	}
}
