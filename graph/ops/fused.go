package ops

import (
	"fmt"
	"math"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// FusedConv is, for the inference machine, a convolution followed by a
// batch norm in inference mode and, where the graph has them, a residual add
// and a ReLU, computed as one convolution whose epilogue applies the batch
// norm as a per-filter scale and shift, adds the residual and rectifies,
// before the single store of each output:
//
//	y = relu(conv(x, w) * s + t + res),  s = gamma/sqrt(runVar+eps),
//	t = beta + (b - runMean) * s          (b: the convolution's bias, or 0)
//
// It saves the batch norm's, the add's and the ReLU's passes over the
// activations. s and t are folded from the running statistics at every run,
// so they are never stale after training steps. It is a step of a machine,
// not an op of the graph (it has Run, not Do, and no device lowering is
// asked of it): graph.Compile puts it in place of the chain in the
// inference machine only (training needs the batch statistics). It writes
// into the convolution's output buffer, which nothing else reads in
// inference.
type FusedConv struct {
	conv    *Conv2DOp
	bn      *BatchNormOp
	res     bool
	relu    bool
	nConvIn int
	scale32 []float32
	shift32 []float32
	scale64 []float64
	shift64 []float64
}

// FuseConvInference returns the fused step standing for the chain conv → bn
// [→ add] [→ relu] and its inputs: the convolution's (x, w[, b]), the batch
// norm's gamma and beta, and the add's other input. add and relu may be
// nil; the caller checks that each link is the only reader of the one
// before. It reports an error when the nodes are not such a chain.
func FuseConvInference(conv, bn, add, relu *gorgonia.Node) (*FusedConv, []*gorgonia.Node, error) {
	cop, ok := conv.Op().(*Conv2DOp)
	if !ok {
		return nil, nil, fmt.Errorf("fuse: %v is not a convolution", conv)
	}
	bop, ok := bn.Op().(*BatchNormOp)
	if !ok || bop.rank != 4 {
		return nil, nil, fmt.Errorf("fuse: %v is not a 4-D batch norm", bn)
	}
	bk := Inputs(bn)
	if len(bk) != 3 || bk[0] != conv {
		return nil, nil, fmt.Errorf("fuse: %v does not normalise %v", bn, conv)
	}
	args := append(Inputs(conv), bk[1], bk[2])
	op := &FusedConv{conv: cop, bn: bop, nConvIn: cop.Arity()}
	last := bn
	if add != nil {
		if _, ok := add.Op().(*AddOp); !ok {
			return nil, nil, fmt.Errorf("fuse: %v is not an add", add)
		}
		ak := Inputs(add)
		if len(ak) != 2 || (ak[0] == bn) == (ak[1] == bn) {
			return nil, nil, fmt.Errorf("fuse: %v does not add %v once", add, bn)
		}
		other := ak[0]
		if other == bn {
			other = ak[1]
		}
		args = append(args, other)
		op.res, last = true, add
	}
	if relu != nil {
		if _, ok := relu.Op().(*ReLUOp); !ok {
			return nil, nil, fmt.Errorf("fuse: %v is not a ReLU", relu)
		}
		if rk := Inputs(relu); len(rk) != 1 || rk[0] != last {
			return nil, nil, fmt.Errorf("fuse: %v does not rectify %v", relu, last)
		}
		op.relu = true
	}
	return op, args, nil
}

// Arity is the number of inputs Run takes.
func (op *FusedConv) Arity() int {
	n := op.nConvIn + 2
	if op.res {
		n++
	}
	return n
}

func (op *FusedConv) String() string {
	s := "FusedConv+BN"
	if op.res {
		s += "+Add"
	}
	if op.relu {
		s += "+ReLU"
	}
	return s
}

// Run computes the chain's output from the inputs FuseConvInference listed.
func (op *FusedConv) Run(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "FusedConv"
	var in [7]*tensor.Dense
	if err := convArgs(name, op.Arity(), vs, in[:]); err != nil {
		return nil, err
	}
	if op.bn.mode.Training() {
		return nil, fmt.Errorf("%s: batch norm in training mode (the fused op is for inference only)", name)
	}
	x, w := in[0], in[1]
	var b *tensor.Dense
	k := 2
	if op.nConvIn == 3 {
		b, k = in[2], 3
	}
	gamma, beta := in[k], in[k+1]
	g, err := convGeometry(x.Shape(), w.Shape(), op.conv.p)
	if err != nil {
		return nil, err
	}
	if gamma.Size() != g.F || beta.Size() != g.F || (b != nil && b.Size() != g.F) ||
		op.bn.runMean.Size() != g.F || op.bn.runVar.Size() != g.F {
		return nil, fmt.Errorf("%s: %d filters, batch-norm parameters or statistics of another size", name, g.F)
	}
	var res *tensor.Dense
	if op.res {
		res = in[k+2]
		if !sameShape(res.Shape(), []int{g.N, g.F, g.OH, g.OW}) {
			return nil, fmt.Errorf("%s: residual shape %v, want (%d,%d,%d,%d)", name, res.Shape(), g.N, g.F, g.OH, g.OW)
		}
	}
	y := op.conv.out.get(x.Dtype(), g.N, g.F, g.OH, g.OW)
	if x.Dtype() == tensor.Float32 {
		op.scale32, op.shift32 = normGrow(op.scale32, g.F), normGrow(op.shift32, g.F)
		fuseFold(op.scale32, op.shift32, op.bn, gamma.Float32s(), beta.Float32s(), fuseBias32(b))
		ep := convEpilogue[float32]{scale: op.scale32, shift: op.shift32, relu: op.relu}
		if res != nil {
			ep.res = res.Float32s()
		}
		convForward(&op.conv.f32, &op.conv.direct, &op.conv.wg, op.conv.kern(), g, x.Float32s(), w.Float32s(), ep, y.Float32s(), true)
	} else {
		op.scale64, op.shift64 = normGrow(op.scale64, g.F), normGrow(op.shift64, g.F)
		fuseFold(op.scale64, op.shift64, op.bn, gamma.Float64s(), beta.Float64s(), fuseBias64(b))
		ep := convEpilogue[float64]{scale: op.scale64, shift: op.shift64, relu: op.relu}
		if res != nil {
			ep.res = res.Float64s()
		}
		convForward(&op.conv.f64, &op.conv.direct, &op.conv.wg, op.conv.kern(), g, x.Float64s(), w.Float64s(), ep, y.Float64s(), false)
	}
	return y, nil
}

func fuseBias32(b *tensor.Dense) []float32 {
	if b == nil {
		return nil
	}
	return b.Float32s()
}

func fuseBias64(b *tensor.Dense) []float64 {
	if b == nil {
		return nil
	}
	return b.Float64s()
}

// fuseFold folds the batch norm's running statistics, gamma, beta and the
// convolution's bias (nil: none) into a per-filter scale and shift, in
// float64 (as the batch norm computes its scale).
func fuseFold[T Float](scale, shift []T, bn *BatchNormOp, gamma, beta, bias []T) {
	for f := range scale {
		s := float64(gamma[f]) / math.Sqrt(normGet(bn.runVar, f)+bn.eps)
		m := normGet(bn.runMean, f)
		if bias != nil {
			m -= float64(bias[f])
		}
		scale[f] = T(s)
		shift[f] = T(float64(beta[f]) - m*s)
	}
}

// BatchNormAdd is, for the training machine, a batch norm in training mode
// whose output's only reader is a residual add running in place over it:
// the batch norm adds the residual (and, where a ReLU follows the add and is
// fused too, rectifies) before its single store, and the machine passes
// the add through. The same float32 operations in the same order as the
// batch norm, the add and the ReLU run apart, so the same bits, with one
// read and one write of the activation less. Like FusedConv it is a step of
// a machine, not an op of the graph: the batch norm's backward ops are
// unchanged, and the inference machine runs the ops themselves.
type BatchNormAdd struct {
	rectifier
	bn *BatchNormOp
}

// FuseBatchNormAdd returns the step standing for bn → add and its inputs:
// the batch norm's (x, gamma, beta) and the add's other input, the
// residual. The caller checks that the add runs in place over bn's output
// and that the residual is computed before bn.
func FuseBatchNormAdd(bn, add *gorgonia.Node) (*BatchNormAdd, []*gorgonia.Node, error) {
	bop, ok := bn.Op().(*BatchNormOp)
	if !ok {
		return nil, nil, fmt.Errorf("fuse: %v is not a batch norm", bn)
	}
	if !IsAdd(add) {
		return nil, nil, fmt.Errorf("fuse: %v is not an add", add)
	}
	in := Inputs(add)
	var res *gorgonia.Node
	switch {
	case len(in) != 2:
		return nil, nil, fmt.Errorf("fuse: %v has %d inputs", add, len(in))
	case in[0] == bn && in[1] != bn:
		res = in[1]
	case in[1] == bn && in[0] != bn:
		res = in[0]
	default:
		return nil, nil, fmt.Errorf("fuse: %v does not add %v to another value", add, bn)
	}
	return &BatchNormAdd{bn: bop}, append(Inputs(bn), res), nil
}

func (f *BatchNormAdd) String() string { return "BatchNorm+Add" }

// Run computes the batch norm of (x, gamma, beta) plus the residual.
func (f *BatchNormAdd) Run(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "BatchNorm+Add"
	args, err := floatArgs(name, 4, vs)
	if err != nil {
		return nil, err
	}
	return f.bn.forward(name, args[0], args[1], args[2], args[3], f.rectify)
}
