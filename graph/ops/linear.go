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

// LinearOp is a fully connected layer, y = x·Wᵀ + b (PyTorch's Linear), as
// one node. Inputs x (N,In), w (Out,In) and, when HasBias, b (Out); output
// (N,Out). One GEMM, its rows split over the worker pool (cpu.GemmSplit).
type LinearOp struct {
	noCommon
	withBias
	id uint64
	outBuf
	withEnv
	gemms
}

// Linear computes x·wᵀ (+ b when b is not nil) for x (N,In), w (Out,In),
// PyTorch layout, b (Out): output (N,Out).
func Linear(x, w, b *gorgonia.Node) (*gorgonia.Node, error) {
	if x == nil || w == nil {
		return nil, fmt.Errorf("Linear: nil input or weight")
	}
	out, err := linearShape(x.Shape(), w.Shape())
	if err != nil {
		return nil, err
	}
	op := &LinearOp{withBias: withBias{bias: b != nil, rank: 2}, id: nextID()}
	if b == nil {
		return gorgonia.ApplyOp(op, x, w)
	}
	if bs := b.Shape(); len(bs) != 1 || bs[0] != out[1] {
		return nil, fmt.Errorf("Linear: bias must have shape (%d) for weight %v, got %v", out[1], w.Shape(), bs)
	}
	return gorgonia.ApplyOp(op, x, w, b)
}

func linearShape(xs, ws tensor.Shape) (tensor.Shape, error) {
	n, _, out, err := linearDims(xs, ws)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{n, out}, nil
}

// linearDims checks the shapes of input and weight and returns N, In, Out.
func linearDims(xs, ws tensor.Shape) (n, in, out int, err error) {
	if len(xs) != 2 {
		return 0, 0, 0, fmt.Errorf("Linear: input must be (N,In), got shape %v", xs)
	}
	if len(ws) != 2 {
		return 0, 0, 0, fmt.Errorf("Linear: weight must be (Out,In), got shape %v", ws)
	}
	if ws[1] != xs[1] {
		return 0, 0, 0, fmt.Errorf("Linear: weight %v takes %d inputs, input %v has %d", ws, ws[1], xs, xs[1])
	}
	return xs[0], xs[1], ws[0], nil
}

func (op *LinearOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	if len(in) < 2 {
		return nil, fmt.Errorf("Linear: expected input and weight shapes, got %d", len(in))
	}
	xs, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	ws, err := shapeOf(in[1])
	if err != nil {
		return nil, err
	}
	return linearShape(xs, ws)
}
func (op *LinearOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "Linear(%t)#%d", op.bias, op.id) }
func (op *LinearOp) Hashcode() uint32      { return hashOf(op) }
func (op *LinearOp) String() string        { return "Linear" }

func (op *LinearOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	var in [3]*tensor.Dense
	if err := convArgs("Linear", op.Arity(), vs, in[:]); err != nil {
		return nil, err
	}
	x, w, b := in[0], in[1], in[2]
	n, in_, out, err := linearDims(x.Shape(), w.Shape())
	if err != nil {
		return nil, err
	}
	if b != nil && (b.Dims() != 1 || b.Shape()[0] != out) {
		return nil, fmt.Errorf("Linear: bias must have shape (%d) for weight %v, got %v", out, w.Shape(), b.Shape())
	}
	y := op.out.get(x.Dtype(), n, out)
	if x.Dtype() == tensor.Float32 {
		var bias []float32
		if b != nil {
			bias = b.Float32s()
		}
		linearForward(&op.g32, &op.wg, &op.kern().k, y.Float32s(), x.Float32s(), w.Float32s(), bias, n, in_, out)
	} else {
		var bias []float64
		if b != nil {
			bias = b.Float64s()
		}
		linearForward(&op.g64, &op.wg, &op.kern().k, y.Float64s(), x.Float64s(), w.Float64s(), bias, n, in_, out)
	}
	return y, nil
}

// gemms holds an op's GEMM tasks, so that splitting one allocates nothing.
type gemms struct {
	g32 cpu.GemmTask[float32]
	g64 cpu.GemmTask[float64]
	wg  sync.WaitGroup
}

// linearForward: y (n,out) = x (n,in) · wᵀ + b, the bias written first and
// the GEMM accumulating onto it.
func linearForward[T Float](t *cpu.GemmTask[T], wg *sync.WaitGroup, k *Kernels, y, x, w, b []T, n, in, out int) {
	var beta T
	if b != nil {
		for i := 0; i < n; i++ {
			copy(y[i*out:(i+1)*out], b)
		}
		beta = 1
	}
	if in == 0 {
		if b == nil {
			clear(y)
		}
		return
	}
	cpu.GemmSplit(t, wg, k.MinParallelWork, false, true, n, out, in, 1, x, in, w, in, beta, y, out)
}

func (op *LinearOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = true
	}
	return d
}

func (op *LinearOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if len(inputs) != op.Arity() {
		return nil, fmt.Errorf("Linear backward: expected %d inputs, got %d", op.Arity(), len(inputs))
	}
	dx, err := gorgonia.ApplyOp(&linearGradOp{kind: linearDataGrad, id: nextID(), withEnv: op.withEnv}, inputs[1], grad)
	if err != nil {
		return nil, fmt.Errorf("Linear input gradient: %w", err)
	}
	dw, err := gorgonia.ApplyOp(&linearGradOp{kind: linearWeightGrad, id: nextID(), withEnv: op.withEnv}, inputs[0], grad)
	if err != nil {
		return nil, fmt.Errorf("Linear weight gradient: %w", err)
	}
	if !op.bias {
		return gorgonia.Nodes{dx, dw}, nil
	}
	db, err := gorgonia.ApplyOp(&linearGradOp{kind: linearBiasGrad, id: nextID(), withEnv: op.withEnv}, grad)
	if err != nil {
		return nil, fmt.Errorf("Linear bias gradient: %w", err)
	}
	return gorgonia.Nodes{dx, dw, db}, nil
}

const (
	linearDataGrad   = iota // (w, dy) -> dx = dy·w
	linearWeightGrad        // (x, dy) -> dw = dyᵀ·x
	linearBiasGrad          // (dy) -> db = column sums of dy
)

// linearGradOp is one of the three gradients of Linear, each its own node so
// only the needed ones are computed.
type linearGradOp struct {
	noCommon
	nonDiff
	kind int
	id   uint64
	outBuf
	withEnv
	gemms
}

var linearGradNames = [...]string{"LinearDataGrad", "LinearWeightGrad", "LinearBiasGrad"}

func (op *linearGradOp) Arity() int {
	if op.kind == linearBiasGrad {
		return 1
	}
	return 2
}
func (op *linearGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t2 := tensorType(2, a)
	if op.kind == linearBiasGrad {
		return fnType(t2, tensorType(1, a))
	}
	return fnType(t2, t2, t2)
}

// dims checks the input shapes (b is nil for the bias gradient) and returns
// the output shape (d1 < 0 for a vector) and the sizes N, In, Out.
func (op *linearGradOp) dims(a, b tensor.Shape) (d0, d1, n, in, out int, err error) {
	name := linearGradNames[op.kind]
	if len(a) != 2 || (op.kind != linearBiasGrad && len(b) != 2) {
		return 0, 0, 0, 0, 0, fmt.Errorf("%s: inputs must be 2-D, got %v and %v", name, a, b)
	}
	switch op.kind {
	case linearDataGrad: // w (Out,In), dy (N,Out)
		if a[0] != b[1] {
			return 0, 0, 0, 0, 0, fmt.Errorf("%s: weight %v and output gradient %v disagree", name, a, b)
		}
		return b[0], a[1], b[0], a[1], a[0], nil
	case linearWeightGrad: // x (N,In), dy (N,Out)
		if a[0] != b[0] {
			return 0, 0, 0, 0, 0, fmt.Errorf("%s: input %v and output gradient %v disagree", name, a, b)
		}
		return b[1], a[1], a[0], a[1], b[1], nil
	}
	return a[1], -1, a[0], 0, a[1], nil // dy (N,Out)
}

func (op *linearGradOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	if len(in) != op.Arity() {
		return nil, fmt.Errorf("%s: expected %d input shapes, got %d", linearGradNames[op.kind], op.Arity(), len(in))
	}
	var s [2]tensor.Shape
	for i := range in {
		var err error
		if s[i], err = shapeOf(in[i]); err != nil {
			return nil, err
		}
	}
	d0, d1, _, _, _, err := op.dims(s[0], s[1])
	if err != nil {
		return nil, err
	}
	if d1 < 0 {
		return tensor.Shape{d0}, nil
	}
	return tensor.Shape{d0, d1}, nil
}
func (op *linearGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "%s#%d", linearGradNames[op.kind], op.id)
}
func (op *linearGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *linearGradOp) String() string   { return linearGradNames[op.kind] }

func (op *linearGradOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	var in [2]*tensor.Dense
	k := op.Arity()
	if err := convArgs(linearGradNames[op.kind], k, vs, in[:k]); err != nil {
		return nil, err
	}
	var bs tensor.Shape
	if k == 2 {
		bs = in[1].Shape()
	}
	d0, d1, n, inN, outN, err := op.dims(in[0].Shape(), bs)
	if err != nil {
		return nil, err
	}
	dt := in[0].Dtype()
	var out *tensor.Dense
	if d1 < 0 {
		out = op.out.get(dt, d0)
	} else {
		out = op.out.get(dt, d0, d1)
	}
	if dt == tensor.Float32 {
		linearGrad(&op.g32, &op.wg, &op.kern().k, op.kind, out.Float32s(), in[0].Float32s(), linearSecond32(in[1]), n, inN, outN)
	} else {
		linearGrad(&op.g64, &op.wg, &op.kern().k, op.kind, out.Float64s(), in[0].Float64s(), linearSecond64(in[1]), n, inN, outN)
	}
	return out, nil
}

func linearSecond32(d *tensor.Dense) []float32 {
	if d == nil {
		return nil
	}
	return d.Float32s()
}

func linearSecond64(d *tensor.Dense) []float64 {
	if d == nil {
		return nil
	}
	return d.Float64s()
}

func linearGrad[T Float](t *cpu.GemmTask[T], wg *sync.WaitGroup, k *Kernels, kind int, out, a, dy []T, n, in, outN int) {
	switch kind {
	case linearDataGrad: // dx (N,In) = dy (N,Out) · w (Out,In)
		if outN == 0 {
			clear(out)
			return
		}
		cpu.GemmSplit(t, wg, k.MinParallelWork, false, false, n, in, outN, 1, dy, outN, a, in, 0, out, in)
	case linearWeightGrad: // dw (Out,In) = dyᵀ (Out,N) · x (N,In)
		if n == 0 {
			clear(out)
			return
		}
		cpu.GemmSplit(t, wg, k.MinParallelWork, true, false, outN, in, n, 1, dy, outN, a, in, 0, out, in)
	case linearBiasGrad: // db (Out) = column sums of dy (N,Out), given as a
		clear(out)
		for i := 0; i < n; i++ {
			convAddTo(out, a[i*outN:(i+1)*outN])
		}
	}
}
