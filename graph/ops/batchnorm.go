package ops

import (
	"fmt"
	"github.com/eraserelu/eraserelu/graph/ops/cpu"
	"hash"
	"math"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// BatchNormConfig configures BatchNorm.
type BatchNormConfig struct {
	// Momentum of the running statistics, PyTorch's convention:
	// running = (1-m)*running + m*batch. 0 means the default 0.1.
	Momentum float64
	// Eps is added to the variance before the square root; 0 means 1e-5.
	Eps float64
	// Mode is the training/inference switch (required).
	Mode *Mode
	// RunningMean and RunningVar, shape (C), are owned by the graph (its
	// buffers); a training-mode forward updates them in place, once per run.
	// The running variance takes the unbiased batch variance (PyTorch).
	RunningMean, RunningVar *tensor.Dense
}

// BatchNormOp is batch normalisation with an affine transform as one node:
// y = (x - mean) / sqrt(var + eps) * gamma + beta per channel (axis 1).
//
// In training mode mean and var are the batch statistics over every axis
// but 1 (the biased variance, as in the paper by Ioffe and Szegedy) and the
// running statistics are updated; in inference mode the running statistics
// are used and left alone. The running statistics are plain tensors held by
// the op, so building a new machine or switching the mode never resets them.
type BatchNormOp struct {
	noCommon
	rank     int
	momentum float64
	eps      float64
	mode     *Mode
	runMean  *tensor.Dense
	runVar   *tensor.Dense
	id       uint64
	outBuf
	withEnv
	rectifier
	k32 bnFwdArgs[float32]
	k64 bnFwdArgs[float64]

	// Saved by the last forward for the backward ops (never a node value):
	// the statistics used per channel, whether they were batch statistics,
	// and the shape they belong to.
	mean, invstd, bvar []float64
	batchStats         bool
	savedN, savedC     int
	savedInner         int

	// convStats, when the convolution before collects the batch
	// statistics (FuseConvBatchStats)
	convStats *convStats
}

// BatchNorm normalises x, of shape (N,C,H,W) or (N,C), per channel with the
// scale gamma and shift beta, both of shape (C).
func BatchNorm(x, gamma, beta *gorgonia.Node, cfg BatchNormConfig) (*gorgonia.Node, error) {
	op, err := newBatchNormOp(x, gamma, beta, cfg)
	if err != nil {
		return nil, fmt.Errorf("ops.BatchNorm: %w", err)
	}
	n, err := gorgonia.ApplyOp(op, x, gamma, beta)
	if err != nil {
		return nil, fmt.Errorf("ops.BatchNorm: %w", err)
	}
	return n, nil
}

func newBatchNormOp(x, gamma, beta *gorgonia.Node, cfg BatchNormConfig) (*BatchNormOp, error) {
	xs := x.Shape()
	if len(xs) != 2 && len(xs) != 4 {
		return nil, fmt.Errorf("x has shape %v, want (N,C,H,W) or (N,C)", xs)
	}
	c := xs[1]
	for _, p := range []struct {
		name string
		n    *gorgonia.Node
	}{{"gamma", gamma}, {"beta", beta}} {
		if s := p.n.Shape(); len(s) != 1 || s[0] != c {
			return nil, fmt.Errorf("%s has shape %v, want (%d) for x of shape %v", p.name, s, c, xs)
		}
	}
	if cfg.Mode == nil {
		return nil, fmt.Errorf("config has no Mode")
	}
	for _, p := range []struct {
		name string
		t    *tensor.Dense
	}{{"RunningMean", cfg.RunningMean}, {"RunningVar", cfg.RunningVar}} {
		if p.t == nil {
			return nil, fmt.Errorf("config has no %s", p.name)
		}
		if s := p.t.Shape(); len(s) != 1 || s[0] != c {
			return nil, fmt.Errorf("%s has shape %v, want (%d)", p.name, s, c)
		}
		if dt := p.t.Dtype(); dt != tensor.Float32 && dt != tensor.Float64 {
			return nil, fmt.Errorf("%s has dtype %v, want float32 or float64", p.name, dt)
		}
	}
	if cfg.RunningMean == cfg.RunningVar {
		return nil, fmt.Errorf("RunningMean and RunningVar are the same tensor")
	}
	m, eps := cfg.Momentum, cfg.Eps
	if m == 0 {
		m = 0.1
	}
	if eps == 0 {
		eps = 1e-5
	}
	if !(m > 0 && m <= 1) {
		return nil, fmt.Errorf("momentum %v outside (0, 1]", cfg.Momentum)
	}
	if !(eps > 0) || math.IsInf(eps, 0) {
		return nil, fmt.Errorf("eps %v is not a positive number", cfg.Eps)
	}
	return &BatchNormOp{rank: len(xs), momentum: m, eps: eps, mode: cfg.Mode,
		runMean: cfg.RunningMean, runVar: cfg.RunningVar, id: nextID()}, nil
}

// IsBatchNorm reports whether n is a batch-norm node of this library.
func IsBatchNorm(n *gorgonia.Node) bool {
	_, ok := n.Op().(*BatchNormOp)
	return ok
}

// Config returns the op's configuration with the defaults filled in.
func (op *BatchNormOp) Config() BatchNormConfig {
	return BatchNormConfig{Momentum: op.momentum, Eps: op.eps, Mode: op.mode,
		RunningMean: op.runMean, RunningVar: op.runVar}
}

func (op *BatchNormOp) Arity() int { return 3 }
func (op *BatchNormOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t, v := tensorType(op.rank, a), tensorType(1, a)
	return fnType(t, v, v, t)
}
func (op *BatchNormOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	return clonedShape(in[0])
}
func (op *BatchNormOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "BatchNorm%d#%d", op.rank, op.id) }
func (op *BatchNormOp) Hashcode() uint32      { return hashOf(op) }
func (op *BatchNormOp) String() string        { return "BatchNorm" }

// bnDims splits the shape of x into batch N, channels C and the spatial size.
func bnDims(name string, x *tensor.Dense, rank int) (n, c, inner int, err error) {
	s := x.Shape()
	if len(s) != rank {
		return 0, 0, 0, fmt.Errorf("%s: input has shape %v, want rank %d", name, s, rank)
	}
	inner = 1
	for _, d := range s[2:] {
		inner *= d
	}
	return s[0], s[1], inner, nil
}

func bnCheckVec(name string, i int, v *tensor.Dense, c int) error {
	if s := v.Shape(); len(s) != 1 || s[0] != c {
		return fmt.Errorf("%s input %d: shape %v, want (%d)", name, i, s, c)
	}
	return nil
}

func (op *BatchNormOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "BatchNorm"
	args, err := floatArgs(name, 3, vs)
	if err != nil {
		return nil, err
	}
	return op.forward(name, args[0], args[1], args[2], nil, op.rectify)
}

// forward normalises x; with res (not nil) it adds res to the result, and
// with relu it rectifies the result, before the store.
func (op *BatchNormOp) forward(name string, x, gamma, beta, res *tensor.Dense, relu bool) (*tensor.Dense, error) {
	n, c, inner, err := bnDims(name, x, op.rank)
	if err != nil {
		return nil, err
	}
	if err := bnCheckVec(name, 1, gamma, c); err != nil {
		return nil, err
	}
	if err := bnCheckVec(name, 2, beta, c); err != nil {
		return nil, err
	}
	if op.runMean.Size() != c || op.runVar.Size() != c {
		return nil, fmt.Errorf("%s: running statistics have %d and %d channels, input has %d", name, op.runMean.Size(), op.runVar.Size(), c)
	}
	training := op.mode.Training()
	m := n * inner
	if training && m < 2 {
		return nil, fmt.Errorf("%s: training mode needs more than one value per channel, input shape %v", name, x.Shape())
	}
	op.mean = normGrow(op.mean, c)
	op.invstd = normGrow(op.invstd, c)
	op.bvar = normGrow(op.bvar, c)
	if !training {
		for k := 0; k < c; k++ {
			op.mean[k] = normGet(op.runMean, k)
			op.invstd[k] = 1 / math.Sqrt(normGet(op.runVar, k)+op.eps)
		}
	}
	// the batch statistics, unless the convolution before collected them
	stats := training && !op.batchStatsFromConv(n, c, inner)
	if res != nil && (res.Dtype() != x.Dtype() || !sameShape(res.Shape(), x.Shape())) {
		return nil, fmt.Errorf("%s: residual %v of shape %v, input %v of shape %v", name, res.Dtype(), res.Shape(), x.Dtype(), x.Shape())
	}
	y := op.out.get(x.Dtype(), x.Shape()...)
	if x.Dtype() == tensor.Float32 {
		op.k32 = bnFwdArgs[float32]{x: x.Float32s(), y: y.Float32s(), gamma: gamma.Float32s(), beta: beta.Float32s(),
			mean: op.mean, invstd: op.invstd, bvar: op.bvar, n: n, c: c, inner: inner, eps: op.eps, stats: stats, relu: relu, simd: op.kern().k.simd()}
		if res != nil {
			op.k32.res = res.Float32s()
		}
		cpu.ParallelRun(&op.k32, c, n*inner)
		op.k32 = bnFwdArgs[float32]{}
	} else {
		op.k64 = bnFwdArgs[float64]{x: x.Float64s(), y: y.Float64s(), gamma: gamma.Float64s(), beta: beta.Float64s(),
			mean: op.mean, invstd: op.invstd, bvar: op.bvar, n: n, c: c, inner: inner, eps: op.eps, stats: stats, relu: relu}
		if res != nil {
			op.k64.res = res.Float64s()
		}
		cpu.ParallelRun(&op.k64, c, n*inner)
		op.k64 = bnFwdArgs[float64]{}
	}
	if training {
		mom := op.momentum
		unbias := float64(m) / float64(m-1)
		for k := 0; k < c; k++ {
			normSet(op.runMean, k, (1-mom)*normGet(op.runMean, k)+mom*op.mean[k])
			normSet(op.runVar, k, (1-mom)*normGet(op.runVar, k)+mom*op.bvar[k]*unbias)
		}
	}
	op.batchStats = training
	op.savedN, op.savedC, op.savedInner = n, c, inner
	return y, nil
}

type bnFwdArgs[T Float] struct {
	x, y, gamma, beta  []T
	res                []T // added to y before the rectifier, when not nil
	mean, invstd, bvar []float64
	n, c, inner        int
	eps                float64
	stats              bool
	relu               bool // rectify y as it is written
	simd               bool // the AVX-512 kernel, for float32
}

// run normalises channels [lo, hi): with stats, one pass for the mean and
// variance (shifted by the channel's first value, accumulated in float64),
// then one pass writing y (plus res, then rectified with relu).
func (a *bnFwdArgs[T]) RunRange(lo, hi int) {
	if a32, ok := any(a).(*bnFwdArgs[float32]); ok && a.simd {
		simdBNFwd32(a32, lo, hi)
		return
	}
	inner, stride := a.inner, a.c*a.inner
	for c := lo; c < hi; c++ {
		if a.stats {
			k := a.x[c*inner]
			var s1, s2 float64
			for off := c * inner; off < len(a.x); off += stride {
				p1, p2 := bnMoments(a.x[off:off+inner], k)
				s1 += p1
				s2 += p2
			}
			cnt := float64(a.n * inner)
			dm := s1 / cnt
			v := s2/cnt - dm*dm
			if v < 0 {
				v = 0
			}
			a.mean[c] = float64(k) + dm
			a.bvar[c] = v
			a.invstd[c] = 1 / math.Sqrt(v+a.eps)
		}
		mean := T(a.mean[c])
		scale := T(float64(a.gamma[c]) * a.invstd[c])
		shift := a.beta[c]
		for off := c * inner; off < len(a.x); off += stride {
			xs, ys := a.x[off:off+inner], a.y[off:off+inner]
			ys = ys[:len(xs)]
			for i, v := range xs {
				ys[i] = (v-mean)*scale + shift
			}
			if a.res != nil {
				rs := a.res[off : off+len(ys)]
				for i := range ys {
					ys[i] += rs[i]
				}
			}
			if a.relu {
				rectifyInPlace(ys)
			}
		}
	}
}

func (op *BatchNormOp) DiffWRT(int) []bool { return []bool{true, true, true} }

// SymDiff: one op reduces (x, dy) to the gradients of gamma and beta as a
// (2, C) node, a second computes dx from them; two row ops split the first.
func (op *BatchNormOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if len(inputs) != 3 {
		return nil, fmt.Errorf("BatchNorm backward: expected 3 inputs, got %d", len(inputs))
	}
	x, gamma := inputs[0], inputs[1]
	red, err := gorgonia.ApplyOp(&bnParamGradOp{fwd: op, id: nextID(), withEnv: op.withEnv}, x, output, grad)
	if err != nil {
		return nil, fmt.Errorf("BatchNorm backward: %w", err)
	}
	dx, err := gorgonia.ApplyOp(&bnInputGradOp{fwd: op, id: nextID(), withEnv: op.withEnv}, x, gamma, grad, red)
	if err != nil {
		return nil, fmt.Errorf("BatchNorm backward: %w", err)
	}
	dgamma, dbeta, err := normSplitRows(red)
	if err != nil {
		return nil, fmt.Errorf("BatchNorm backward: %w", err)
	}
	return gorgonia.Nodes{dx, dgamma, dbeta}, nil
}

// checkSaved checks that the saved statistics belong to x.
func (op *BatchNormOp) checkSaved(name string, x *tensor.Dense) (n, c, inner int, err error) {
	n, c, inner, err = bnDims(name, x, op.rank)
	if err != nil {
		return
	}
	if n != op.savedN || c != op.savedC || inner != op.savedInner {
		err = fmt.Errorf("%s: the forward pass has not run for input shape %v", name, x.Shape())
	}
	return
}

// bnParamGradOp computes, from x, the forward output y (read only to order
// it after the forward) and dy, the (2, C) tensor whose rows are the
// gradients of gamma (sum of dy * xhat) and beta (sum of dy).
//
// With maskReLU (ReLUGradMasker), dy is the unmasked gradient of the ReLU
// that rectified y in place, and the op first applies that ReLU's gradient
// mask to dy in place (reluBackwardOp's bits), reading y for it.
type bnParamGradOp struct {
	noCommon
	nonDiff
	fwd *BatchNormOp
	id  uint64
	outBuf
	withEnv
	maskReLU bool
	k32      bnRedArgs[float32]
	k64      bnRedArgs[float64]
}

// OrdersOnly: the forward output y is an input only to order the op after
// the forward pass; the op never reads it (so the rectifier after a batch
// norm may overwrite it), except with maskReLU, where it reads the
// rectifier's output that overwrote it (a forward value, which the memory
// plan never shares, so the plan need not know).
func (op *bnParamGradOp) OrdersOnly(i int) bool { return i == 1 }

// ReLUGradMasker is implemented by batch norm's parameter-gradient op. When
// the batch norm's output is rectified in place by a ReLU and that ReLU's
// backward runs in place over its incoming gradient, graph.Compile lets the
// training machine skip that backward op (ops.Kernels.TrainingFusion)
// and tells this op, its first reader, to apply the gradient mask (from the
// rectified output, its input 1) to the gradient (its input 2) in place as
// it sums it: the same bits, one pass over the gradient less.
type ReLUGradMasker interface {
	MaskReLUGrad(on bool)
}

// MaskReLUGrad makes the op apply the ReLU's gradient mask (ReLUGradMasker).
func (op *bnParamGradOp) MaskReLUGrad(on bool) { op.maskReLU = on }

func (op *bnParamGradOp) Arity() int { return 3 }
func (op *bnParamGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t := tensorType(op.fwd.rank, a)
	return fnType(t, t, t, tensorType(2, a))
}
func (op *bnParamGradOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	if len(s) < 2 {
		return nil, fmt.Errorf("BatchNormParamGrad: input shape %v has no channel axis", s)
	}
	return tensor.Shape{2, s[1]}, nil
}
func (op *bnParamGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "BatchNormParamGrad%d#%d", op.fwd.rank, op.id)
}
func (op *bnParamGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *bnParamGradOp) String() string   { return "BatchNormParamGrad" }

func (op *bnParamGradOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "BatchNormParamGrad"
	args, err := floatArgs(name, 3, vs)
	if err != nil {
		return nil, err
	}
	x, dy := args[0], args[2]
	if !sameShape(x.Shape(), dy.Shape()) {
		return nil, fmt.Errorf("%s: dy has shape %v, x has %v", name, dy.Shape(), x.Shape())
	}
	n, c, inner, err := op.fwd.checkSaved(name, x)
	if err != nil {
		return nil, err
	}
	var reluOut *tensor.Dense
	if op.maskReLU {
		reluOut = args[1]
		if !sameShape(reluOut.Shape(), x.Shape()) {
			return nil, fmt.Errorf("%s: the rectified output has shape %v, x has %v", name, reluOut.Shape(), x.Shape())
		}
	}
	red := op.out.get(x.Dtype(), 2, c)
	if x.Dtype() == tensor.Float32 {
		op.k32 = bnRedArgs[float32]{x: x.Float32s(), dy: dy.Float32s(), red: red.Float32s(),
			mean: op.fwd.mean, invstd: op.fwd.invstd, n: n, c: c, inner: inner, simd: op.kern().k.simd()}
		if reluOut != nil {
			op.k32.reluOut = reluOut.Float32s()
		}
		cpu.ParallelRun(&op.k32, c, n*inner)
		op.k32 = bnRedArgs[float32]{}
	} else {
		op.k64 = bnRedArgs[float64]{x: x.Float64s(), dy: dy.Float64s(), red: red.Float64s(),
			mean: op.fwd.mean, invstd: op.fwd.invstd, n: n, c: c, inner: inner}
		if reluOut != nil {
			op.k64.reluOut = reluOut.Float64s()
		}
		cpu.ParallelRun(&op.k64, c, n*inner)
		op.k64 = bnRedArgs[float64]{}
	}
	return red, nil
}

type bnRedArgs[T Float] struct {
	x, dy, red   []T
	reluOut      []T // when not nil, dy is masked in place by reluOut > 0 first
	mean, invstd []float64
	n, c, inner  int
	simd         bool // the AVX-512 kernel, for float32
}

func (a *bnRedArgs[T]) RunRange(lo, hi int) {
	if a32, ok := any(a).(*bnRedArgs[float32]); ok && a.simd {
		simdBNRed32(a32, lo, hi)
		return
	}
	inner, stride := a.inner, a.c*a.inner
	for c := lo; c < hi; c++ {
		mean := T(a.mean[c])
		var sdy, sdyx float64
		for off := c * inner; off < len(a.x); off += stride {
			if a.reluOut != nil {
				reluGradInPlace(a.dy[off:off+inner], a.reluOut[off:off+inner])
			}
			p, q := bnDotSums(a.x[off:off+inner], a.dy[off:off+inner], mean)
			sdy += p
			sdyx += q
		}
		a.red[c] = T(sdyx * a.invstd[c])
		a.red[a.c+c] = T(sdy)
	}
}

// bnInputGradOp computes dx from x, gamma, dy and the parameter gradients:
// in training mode
//
//	dx = gamma*invstd * (dy - sum(dy)/M - xhat * sum(dy*xhat)/M),
//
// in inference mode (constant statistics) dx = gamma*invstd*dy.
type bnInputGradOp struct {
	noCommon
	nonDiff
	fwd *BatchNormOp
	id  uint64
	outBuf
	withEnv
	k32 bnDxArgs[float32]
	k64 bnDxArgs[float64]
}

func (op *bnInputGradOp) Arity() int { return 4 }
func (op *bnInputGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t := tensorType(op.fwd.rank, a)
	return fnType(t, tensorType(1, a), t, tensorType(2, a), t)
}
func (op *bnInputGradOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	return clonedShape(in[0])
}
func (op *bnInputGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "BatchNormInputGrad%d#%d", op.fwd.rank, op.id)
}
func (op *bnInputGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *bnInputGradOp) String() string   { return "BatchNormInputGrad" }

func (op *bnInputGradOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "BatchNormInputGrad"
	args, err := floatArgs(name, 4, vs)
	if err != nil {
		return nil, err
	}
	x, gamma, dy, red := args[0], args[1], args[2], args[3]
	if !sameShape(x.Shape(), dy.Shape()) {
		return nil, fmt.Errorf("%s: dy has shape %v, x has %v", name, dy.Shape(), x.Shape())
	}
	n, c, inner, err := op.fwd.checkSaved(name, x)
	if err != nil {
		return nil, err
	}
	if err := bnCheckVec(name, 1, gamma, c); err != nil {
		return nil, err
	}
	if red.Size() != 2*c {
		return nil, fmt.Errorf("%s input 3: shape %v, want (2, %d)", name, red.Shape(), c)
	}
	dx := op.out.get(x.Dtype(), x.Shape()...)
	if x.Dtype() == tensor.Float32 {
		op.k32 = bnDxArgs[float32]{x: x.Float32s(), gamma: gamma.Float32s(), dy: dy.Float32s(), red: red.Float32s(), dx: dx.Float32s(),
			mean: op.fwd.mean, invstd: op.fwd.invstd, n: n, c: c, inner: inner, batch: op.fwd.batchStats, simd: op.kern().k.simd()}
		cpu.ParallelRun(&op.k32, c, n*inner)
		op.k32 = bnDxArgs[float32]{}
	} else {
		op.k64 = bnDxArgs[float64]{x: x.Float64s(), gamma: gamma.Float64s(), dy: dy.Float64s(), red: red.Float64s(), dx: dx.Float64s(),
			mean: op.fwd.mean, invstd: op.fwd.invstd, n: n, c: c, inner: inner, batch: op.fwd.batchStats}
		cpu.ParallelRun(&op.k64, c, n*inner)
		op.k64 = bnDxArgs[float64]{}
	}
	return dx, nil
}

type bnDxArgs[T Float] struct {
	x, gamma, dy, red, dx []T
	mean, invstd          []float64
	n, c, inner           int
	batch                 bool
	simd                  bool // the AVX-512 kernel, for float32
}

// run writes dx = g*dy + b*(x-mean) + c0 per channel, with g = gamma*invstd,
// b = -g*invstd*dgamma/M and c0 = -g*dbeta/M (both zero in inference mode).
func (a *bnDxArgs[T]) RunRange(lo, hi int) {
	if a32, ok := any(a).(*bnDxArgs[float32]); ok && a.simd {
		simdBNDx32(a32, lo, hi)
		return
	}
	inner, stride := a.inner, a.c*a.inner
	m := float64(a.n * inner)
	for c := lo; c < hi; c++ {
		g := float64(a.gamma[c]) * a.invstd[c]
		var b, c0 float64
		if a.batch {
			b = -g * a.invstd[c] * float64(a.red[c]) / m
			c0 = -g * float64(a.red[a.c+c]) / m
		}
		gt, bt, ct, mean := T(g), T(b), T(c0), T(a.mean[c])
		for off := c * inner; off < len(a.x); off += stride {
			xs, dys, dxs := a.x[off:off+inner], a.dy[off:off+inner], a.dx[off:off+inner]
			dys, dxs = dys[:len(xs)], dxs[:len(xs)]
			for i, v := range xs {
				dxs[i] = gt*dys[i] + bt*(v-mean) + ct
			}
		}
	}
}

// bnMoments returns the sums of (x-k) and (x-k)^2 in float64, with four
// independent accumulators so that the adds do not wait on each other.
func bnMoments[T Float](x []T, k T) (s1, s2 float64) {
	var a0, a1, a2, a3, b0, b1, b2, b3 float64
	for len(x) >= 4 {
		d0, d1, d2, d3 := float64(x[0]-k), float64(x[1]-k), float64(x[2]-k), float64(x[3]-k)
		a0 += d0
		a1 += d1
		a2 += d2
		a3 += d3
		b0 += d0 * d0
		b1 += d1 * d1
		b2 += d2 * d2
		b3 += d3 * d3
		x = x[4:]
	}
	for _, v := range x {
		d := float64(v - k)
		a0 += d
		b0 += d * d
	}
	return (a0 + a1) + (a2 + a3), (b0 + b1) + (b2 + b3)
}

// bnDotSums returns the sums of dy and dy*(x-mean) in float64, four
// accumulators each.
func bnDotSums[T Float](x, dy []T, mean T) (sdy, sdyx float64) {
	dy = dy[:len(x)]
	var a0, a1, a2, a3, b0, b1, b2, b3 float64
	for len(x) >= 4 && len(dy) >= 4 {
		g0, g1, g2, g3 := dy[0], dy[1], dy[2], dy[3]
		a0 += float64(g0)
		a1 += float64(g1)
		a2 += float64(g2)
		a3 += float64(g3)
		b0 += float64(g0 * (x[0] - mean))
		b1 += float64(g1 * (x[1] - mean))
		b2 += float64(g2 * (x[2] - mean))
		b3 += float64(g3 * (x[3] - mean))
		x, dy = x[4:], dy[4:]
	}
	for i, v := range x {
		a0 += float64(dy[i])
		b0 += float64(dy[i] * (v - mean))
	}
	return (a0 + a1) + (a2 + a3), (b0 + b1) + (b2 + b3)
}
