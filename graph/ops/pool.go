package ops

import (
	"fmt"
	"github.com/eraserelu/eraserelu/graph/ops/cpu"
	"hash"
	"math"
	"sync"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// poolGeom is the geometry of a square pooling window over (N,C,H,W).
type poolGeom struct {
	N, C, H, W     int
	K, S, Pad      int
	OH, OW         int
	planes, inSize int // N*C, H*W
	outSize        int // OH*OW
}

// poolGeometry checks x's shape against the window.
func poolGeometry(name string, xs tensor.Shape, kernel, stride, pad int) (poolGeom, error) {
	if len(xs) != 4 {
		return poolGeom{}, fmt.Errorf("%s: input must be (N,C,H,W), got shape %v", name, xs)
	}
	g := poolGeom{N: xs[0], C: xs[1], H: xs[2], W: xs[3], K: kernel, S: stride, Pad: pad}
	switch {
	case kernel < 1 || stride < 1:
		return g, fmt.Errorf("%s: kernel %d and stride %d must be positive (input %v)", name, kernel, stride, xs)
	case pad < 0 || 2*pad > kernel:
		return g, fmt.Errorf("%s: padding %d must be between 0 and half the kernel %d (input %v)", name, pad, kernel, xs)
	case g.N < 1 || g.C < 1 || g.H < 1 || g.W < 1:
		return g, fmt.Errorf("%s: empty input %v", name, xs)
	case kernel > g.H+2*pad || kernel > g.W+2*pad:
		return g, fmt.Errorf("%s: kernel %dx%d larger than the padded input %dx%d (input %v, padding %d)",
			name, kernel, kernel, g.H+2*pad, g.W+2*pad, xs, pad)
	}
	g.OH = ConvOutputSize(g.H, kernel, stride, pad)
	g.OW = ConvOutputSize(g.W, kernel, stride, pad)
	g.planes, g.inSize, g.outSize = g.N*g.C, g.H*g.W, g.OH*g.OW
	return g, nil
}

func (g *poolGeom) workers(k *Kernels) int {
	return cpu.Workers(g.planes, float64(g.planes)*float64(g.outSize*g.K*g.K), k.MinParallelWork)
}

// window is the valid input range [h0,h1) x [w0,w1) of output (oh, ow).
func (g *poolGeom) window(oh, ow int) (h0, h1, w0, w1 int) {
	h0, w0 = oh*g.S-g.Pad, ow*g.S-g.Pad
	h1, w1 = min(h0+g.K, g.H), min(w0+g.K, g.W)
	return max(h0, 0), h1, max(w0, 0), w1
}

// poolOp holds what the pooling ops share: window, identity, output buffer,
// and the pool's wait group.
type poolOp struct {
	noCommon
	kernel, stride, pad int
	id                  uint64
	outBuf
	withEnv
	wg sync.WaitGroup
}

// Kernel, Stride and Pad return the window parameters.
func (op *poolOp) Kernel() int { return op.kernel }
func (op *poolOp) Stride() int { return op.stride }
func (op *poolOp) Pad() int    { return op.pad }

func (op *poolOp) Arity() int { return 1 }
func (op *poolOp) Type() hm.Type {
	t := tensorType(4, hm.TypeVariable('a'))
	return fnType(t, t)
}

func (op *poolOp) inferShape(name string, in []gorgonia.DimSizer) (tensor.Shape, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("%s: expected 1 input shape, got %d", name, len(in))
	}
	s, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	g, err := poolGeometry(name, s, op.kernel, op.stride, op.pad)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{g.N, g.C, g.OH, g.OW}, nil
}

// MaxPool2DOp is max pooling over kernel x kernel windows with stride and
// zero padding, one node; padding never wins the max (it is skipped, as in
// PyTorch). Its gradient routes each output gradient to the first maximum
// of its window (row-major order), recomputed from the input. (A NaN in a
// window makes its output NaN; the gradient then goes to the window's
// largest number, or its first position.)
type MaxPool2DOp struct {
	poolOp
	f32 poolTask[float32]
	f64 poolTask[float64]
}

// MaxPool2D max-pools x (N,C,H,W) over kernel x kernel windows moved by
// stride, padded by pad on every side (0 <= pad <= kernel/2): output
// (N,C,OH,OW), OH = ConvOutputSize(H, kernel, stride, pad).
func MaxPool2D(x *gorgonia.Node, kernel, stride, pad int) (*gorgonia.Node, error) {
	if _, err := poolGeometry("MaxPool2D", x.Shape(), kernel, stride, pad); err != nil {
		return nil, err
	}
	return gorgonia.ApplyOp(&MaxPool2DOp{poolOp: poolOp{kernel: kernel, stride: stride, pad: pad, id: nextID()}}, x)
}

func (op *MaxPool2DOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	return op.inferShape("MaxPool2D", in)
}
func (op *MaxPool2DOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "MaxPool2D(%d,%d,%d)#%d", op.kernel, op.stride, op.pad, op.id)
}
func (op *MaxPool2DOp) Hashcode() uint32 { return hashOf(op) }
func (op *MaxPool2DOp) String() string {
	return fmt.Sprintf("MaxPool2D(k%d s%d p%d)", op.kernel, op.stride, op.pad)
}

func (op *MaxPool2DOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	var in [1]*tensor.Dense
	if err := convArgs("MaxPool2D", 1, vs, in[:]); err != nil {
		return nil, err
	}
	x := in[0]
	g, err := poolGeometry("MaxPool2D", x.Shape(), op.kernel, op.stride, op.pad)
	if err != nil {
		return nil, err
	}
	y := op.out.get(x.Dtype(), g.N, g.C, g.OH, g.OW)
	if x.Dtype() == tensor.Float32 {
		poolRun(&op.f32, &op.wg, op.kern(), poolMaxFwd, g, x.Float32s(), nil, y.Float32s())
	} else {
		poolRun(&op.f64, &op.wg, op.kern(), poolMaxFwd, g, x.Float64s(), nil, y.Float64s())
	}
	return y, nil
}

func (op *MaxPool2DOp) DiffWRT(int) []bool { return []bool{true} }
func (op *MaxPool2DOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	dx, err := gorgonia.ApplyOp(&maxPoolGradOp{poolOp: poolOp{kernel: op.kernel, stride: op.stride, pad: op.pad, id: nextID(), withEnv: op.withEnv}}, inputs[0], grad)
	if err != nil {
		return nil, fmt.Errorf("MaxPool2D backward: %w", err)
	}
	return gorgonia.Nodes{dx}, nil
}

// maxPoolGradOp computes dx from the pooled input x and the output gradient.
type maxPoolGradOp struct {
	poolOp
	nonDiff
	f32 poolTask[float32]
	f64 poolTask[float64]
}

func (op *maxPoolGradOp) Arity() int { return 2 }
func (op *maxPoolGradOp) Type() hm.Type {
	t := tensorType(4, hm.TypeVariable('a'))
	return fnType(t, t, t)
}
func (op *maxPoolGradOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	return clonedShape(in[0])
}
func (op *maxPoolGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "MaxPool2DGrad(%d,%d,%d)#%d", op.kernel, op.stride, op.pad, op.id)
}
func (op *maxPoolGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *maxPoolGradOp) String() string   { return "MaxPool2DGrad" }

func (op *maxPoolGradOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	var in [2]*tensor.Dense
	if err := convArgs("MaxPool2DGrad", 2, vs, in[:]); err != nil {
		return nil, err
	}
	x, dy := in[0], in[1]
	g, err := poolGeometry("MaxPool2DGrad", x.Shape(), op.kernel, op.stride, op.pad)
	if err != nil {
		return nil, err
	}
	if err := poolCheckGrad("MaxPool2DGrad", &g, dy.Shape()); err != nil {
		return nil, err
	}
	dx := op.out.get(x.Dtype(), g.N, g.C, g.H, g.W)
	if x.Dtype() == tensor.Float32 {
		poolRun(&op.f32, &op.wg, op.kern(), poolMaxBwd, g, x.Float32s(), dy.Float32s(), dx.Float32s())
	} else {
		poolRun(&op.f64, &op.wg, op.kern(), poolMaxBwd, g, x.Float64s(), dy.Float64s(), dx.Float64s())
	}
	return dx, nil
}

func poolCheckGrad(name string, g *poolGeom, dys tensor.Shape) error {
	if len(dys) != 4 || dys[0] != g.N || dys[1] != g.C || dys[2] != g.OH || dys[3] != g.OW {
		return fmt.Errorf("%s: output gradient %v, want (%d,%d,%d,%d)", name, dys, g.N, g.C, g.OH, g.OW)
	}
	return nil
}

// AvgPool2DOp is average pooling over kernel x kernel windows with stride
// and zero padding, one node. Every window is divided by kernel*kernel, the
// padded positions counting as zeros (PyTorch's count_include_pad=True, the
// default), also where a window hangs over the border.
type AvgPool2DOp struct {
	poolOp
	f32 poolTask[float32]
	f64 poolTask[float64]
}

// AvgPool2D average-pools x (N,C,H,W) over kernel x kernel windows moved by
// stride, padded by pad on every side (0 <= pad <= kernel/2): output
// (N,C,OH,OW). Each output is the window's sum divided by kernel*kernel,
// whether or not the window overlaps the padding (PyTorch's default
// count_include_pad=True).
func AvgPool2D(x *gorgonia.Node, kernel, stride, pad int) (*gorgonia.Node, error) {
	if _, err := poolGeometry("AvgPool2D", x.Shape(), kernel, stride, pad); err != nil {
		return nil, err
	}
	return gorgonia.ApplyOp(&AvgPool2DOp{poolOp: poolOp{kernel: kernel, stride: stride, pad: pad, id: nextID()}}, x)
}

func (op *AvgPool2DOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	return op.inferShape("AvgPool2D", in)
}
func (op *AvgPool2DOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "AvgPool2D(%d,%d,%d)#%d", op.kernel, op.stride, op.pad, op.id)
}
func (op *AvgPool2DOp) Hashcode() uint32 { return hashOf(op) }
func (op *AvgPool2DOp) String() string {
	return fmt.Sprintf("AvgPool2D(k%d s%d p%d)", op.kernel, op.stride, op.pad)
}

func (op *AvgPool2DOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	var in [1]*tensor.Dense
	if err := convArgs("AvgPool2D", 1, vs, in[:]); err != nil {
		return nil, err
	}
	x := in[0]
	g, err := poolGeometry("AvgPool2D", x.Shape(), op.kernel, op.stride, op.pad)
	if err != nil {
		return nil, err
	}
	y := op.out.get(x.Dtype(), g.N, g.C, g.OH, g.OW)
	if x.Dtype() == tensor.Float32 {
		poolRun(&op.f32, &op.wg, op.kern(), poolAvgFwd, g, x.Float32s(), nil, y.Float32s())
	} else {
		poolRun(&op.f64, &op.wg, op.kern(), poolAvgFwd, g, x.Float64s(), nil, y.Float64s())
	}
	return y, nil
}

func (op *AvgPool2DOp) DiffWRT(int) []bool { return []bool{true} }
func (op *AvgPool2DOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	gop := &avgPoolGradOp{poolOp: poolOp{kernel: op.kernel, stride: op.stride, pad: op.pad, id: nextID(), withEnv: op.withEnv}, xshape: inputs[0].Shape().Clone()}
	dx, err := gorgonia.ApplyOp(gop, grad)
	if err != nil {
		return nil, fmt.Errorf("AvgPool2D backward: %w", err)
	}
	return gorgonia.Nodes{dx}, nil
}

// avgPoolGradOp spreads each output gradient over its window, divided by
// kernel*kernel; it needs only the output gradient and the input shape.
type avgPoolGradOp struct {
	poolOp
	nonDiff
	xshape tensor.Shape
	xs     tensor.Shape // xshape with dy's batch size, reused to not allocate
	f32    poolTask[float32]
	f64    poolTask[float64]
}

func (op *avgPoolGradOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	if len(s) != 4 {
		return nil, fmt.Errorf("AvgPool2DGrad: output gradient must be 4-D, got %v", s)
	}
	return tensor.Shape{s[0], op.xshape[1], op.xshape[2], op.xshape[3]}, nil
}
func (op *avgPoolGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "AvgPool2DGrad(%d,%d,%d,%v)#%d", op.kernel, op.stride, op.pad, op.xshape, op.id)
}
func (op *avgPoolGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *avgPoolGradOp) String() string   { return "AvgPool2DGrad" }

func (op *avgPoolGradOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	var in [1]*tensor.Dense
	if err := convArgs("AvgPool2DGrad", 1, vs, in[:]); err != nil {
		return nil, err
	}
	dy := in[0]
	dys := dy.Shape()
	if len(dys) != 4 {
		return nil, fmt.Errorf("AvgPool2DGrad: output gradient must be 4-D, got %v", dys)
	}
	if op.xs == nil {
		op.xs = op.xshape.Clone()
	}
	op.xs[0] = dys[0]
	g, err := poolGeometry("AvgPool2DGrad", op.xs, op.kernel, op.stride, op.pad)
	if err != nil {
		return nil, err
	}
	if err := poolCheckGrad("AvgPool2DGrad", &g, dys); err != nil {
		return nil, err
	}
	dx := op.out.get(dy.Dtype(), g.N, g.C, g.H, g.W)
	if dy.Dtype() == tensor.Float32 {
		poolRun(&op.f32, &op.wg, op.kern(), poolAvgBwd, g, nil, dy.Float32s(), dx.Float32s())
	} else {
		poolRun(&op.f64, &op.wg, op.kern(), poolAvgBwd, g, nil, dy.Float64s(), dx.Float64s())
	}
	return dx, nil
}

// The pooling kernels.
const (
	poolMaxFwd = iota
	poolMaxBwd
	poolAvgFwd
	poolAvgBwd
)

// poolTask runs one pooling kernel over planes (n,c).
type poolTask[T Float] struct {
	kind      int
	g         poolGeom
	x, dy, yx []T // yx: the output (forward) or dx (backward)
}

func poolRun[T Float](t *poolTask[T], wg *sync.WaitGroup, e *Env, kind int, g poolGeom, x, dy, out []T) {
	*t = poolTask[T]{kind: kind, g: g, x: x, dy: dy, yx: out}
	cpu.Parallel(t, wg, g.workers(&e.k), g.planes, false)
	*t = poolTask[T]{}
}

func (t *poolTask[T]) Run(_, lo, hi int) {
	g := &t.g
	inv := 1 / T(g.K*g.K)
	for pl := lo; pl < hi; pl++ {
		switch t.kind {
		case poolMaxFwd:
			x, y := t.x[pl*g.inSize:][:g.inSize], t.yx[pl*g.outSize:][:g.outSize]
			for oh := 0; oh < g.OH; oh++ {
				for ow := 0; ow < g.OW; ow++ {
					h0, h1, w0, w1 := g.window(oh, ow)
					m := T(math.Inf(-1))
					for h := h0; h < h1; h++ {
						for _, v := range x[h*g.W+w0 : h*g.W+w1] {
							m = max(m, v)
						}
					}
					y[oh*g.OW+ow] = m
				}
			}
		case poolMaxBwd:
			x, dy, dx := t.x[pl*g.inSize:][:g.inSize], t.dy[pl*g.outSize:][:g.outSize], t.yx[pl*g.inSize:][:g.inSize]
			clear(dx)
			for oh := 0; oh < g.OH; oh++ {
				for ow := 0; ow < g.OW; ow++ {
					h0, h1, w0, w1 := g.window(oh, ow)
					m, at := T(math.Inf(-1)), h0*g.W+w0
					for h := h0; h < h1; h++ {
						for w := w0; w < w1; w++ {
							if v := x[h*g.W+w]; v > m {
								m, at = v, h*g.W+w
							}
						}
					}
					dx[at] += dy[oh*g.OW+ow]
				}
			}
		case poolAvgFwd:
			x, y := t.x[pl*g.inSize:][:g.inSize], t.yx[pl*g.outSize:][:g.outSize]
			for oh := 0; oh < g.OH; oh++ {
				for ow := 0; ow < g.OW; ow++ {
					h0, h1, w0, w1 := g.window(oh, ow)
					var s T
					for h := h0; h < h1; h++ {
						for _, v := range x[h*g.W+w0 : h*g.W+w1] {
							s += v
						}
					}
					y[oh*g.OW+ow] = s * inv
				}
			}
		case poolAvgBwd:
			dy, dx := t.dy[pl*g.outSize:][:g.outSize], t.yx[pl*g.inSize:][:g.inSize]
			clear(dx)
			for oh := 0; oh < g.OH; oh++ {
				for ow := 0; ow < g.OW; ow++ {
					h0, h1, w0, w1 := g.window(oh, ow)
					v := dy[oh*g.OW+ow] * inv
					for h := h0; h < h1; h++ {
						r := dx[h*g.W+w0 : h*g.W+w1]
						for i := range r {
							r[i] += v
						}
					}
				}
			}
		}
	}
}

// GlobalAvgPoolOp averages each channel plane: (N,C,H,W) -> (N,C).
type GlobalAvgPoolOp struct {
	noCommon
	id uint64
	outBuf
}

// GlobalAvgPool averages x (N,C,H,W) over its H*W positions: (N,C).
func GlobalAvgPool(x *gorgonia.Node) (*gorgonia.Node, error) {
	if s := x.Shape(); len(s) != 4 || s.TotalSize() == 0 {
		return nil, fmt.Errorf("GlobalAvgPool: input must be a non-empty (N,C,H,W), got shape %v", s)
	}
	return gorgonia.ApplyOp(&GlobalAvgPoolOp{id: nextID()}, x)
}

func (op *GlobalAvgPoolOp) Arity() int { return 1 }
func (op *GlobalAvgPoolOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return fnType(tensorType(4, a), tensorType(2, a))
}
func (op *GlobalAvgPoolOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	if len(s) != 4 {
		return nil, fmt.Errorf("GlobalAvgPool: input must be (N,C,H,W), got shape %v", s)
	}
	return tensor.Shape{s[0], s[1]}, nil
}
func (op *GlobalAvgPoolOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "GlobalAvgPool#%d", op.id) }
func (op *GlobalAvgPoolOp) Hashcode() uint32      { return hashOf(op) }
func (op *GlobalAvgPoolOp) String() string        { return "GlobalAvgPool" }

func (op *GlobalAvgPoolOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	var in [1]*tensor.Dense
	if err := convArgs("GlobalAvgPool", 1, vs, in[:]); err != nil {
		return nil, err
	}
	x := in[0]
	s := x.Shape()
	if len(s) != 4 || s[2]*s[3] == 0 {
		return nil, fmt.Errorf("GlobalAvgPool: input must be a non-empty (N,C,H,W), got shape %v", s)
	}
	y := op.out.get(x.Dtype(), s[0], s[1])
	if x.Dtype() == tensor.Float32 {
		poolGlobalAvg(y.Float32s(), x.Float32s(), s[2]*s[3])
	} else {
		poolGlobalAvg(y.Float64s(), x.Float64s(), s[2]*s[3])
	}
	return y, nil
}

func poolGlobalAvg[T Float](y, x []T, hw int) {
	inv := 1 / T(hw)
	for i := range y {
		var s T
		for _, v := range x[i*hw : (i+1)*hw] {
			s += v
		}
		y[i] = s * inv
	}
}

func (op *GlobalAvgPoolOp) DiffWRT(int) []bool { return []bool{true} }
func (op *GlobalAvgPoolOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	s := inputs[0].Shape()
	dx, err := gorgonia.ApplyOp(&globalAvgPoolGradOp{h: s[2], w: s[3], id: nextID()}, grad)
	if err != nil {
		return nil, fmt.Errorf("GlobalAvgPool backward: %w", err)
	}
	return gorgonia.Nodes{dx}, nil
}

// globalAvgPoolGradOp broadcasts dy (N,C) / (H*W) back to (N,C,H,W).
type globalAvgPoolGradOp struct {
	noCommon
	nonDiff
	h, w int
	id   uint64
	outBuf
}

func (op *globalAvgPoolGradOp) Arity() int { return 1 }
func (op *globalAvgPoolGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return fnType(tensorType(2, a), tensorType(4, a))
}
func (op *globalAvgPoolGradOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	if len(s) != 2 {
		return nil, fmt.Errorf("GlobalAvgPoolGrad: output gradient must be (N,C), got %v", s)
	}
	return tensor.Shape{s[0], s[1], op.h, op.w}, nil
}
func (op *globalAvgPoolGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "GlobalAvgPoolGrad(%d,%d)#%d", op.h, op.w, op.id)
}
func (op *globalAvgPoolGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *globalAvgPoolGradOp) String() string   { return "GlobalAvgPoolGrad" }

func (op *globalAvgPoolGradOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	var in [1]*tensor.Dense
	if err := convArgs("GlobalAvgPoolGrad", 1, vs, in[:]); err != nil {
		return nil, err
	}
	dy := in[0]
	s := dy.Shape()
	if len(s) != 2 {
		return nil, fmt.Errorf("GlobalAvgPoolGrad: output gradient must be (N,C), got %v", s)
	}
	dx := op.out.get(dy.Dtype(), s[0], s[1], op.h, op.w)
	if dy.Dtype() == tensor.Float32 {
		poolGlobalAvgGrad(dx.Float32s(), dy.Float32s(), op.h*op.w)
	} else {
		poolGlobalAvgGrad(dx.Float64s(), dy.Float64s(), op.h*op.w)
	}
	return dx, nil
}

func poolGlobalAvgGrad[T Float](dx, dy []T, hw int) {
	inv := 1 / T(hw)
	for i, d := range dy {
		v := d * inv
		r := dx[i*hw : (i+1)*hw]
		for j := range r {
			r[j] = v
		}
	}
}
