package ops

import (
	"fmt"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Every op of the library describes itself (Describe): what it computes, as
// a Kind, and the attributes a back end needs to compute the same thing
// with its own kernels (convolution geometry, padding, a slice, a random
// stream...). A back end such as cuda lowers ops by their description,
// never by their Go type or private fields, so an op's representation can
// change freely as long as its description stays true. A backward op that
// reads what its forward op saved gives that op through Forward (Backward).

// Kind names the computation of an op.
type Kind int

// The kinds of the library's ops. A gradient kind computes the gradient
// named in its comment; its inputs are those of the op's SymDiff.
const (
	KindUnknown Kind = iota
	KindConv2D
	KindConv2DDataGrad   // (w, dy) -> dx
	KindConv2DFilterGrad // (x, dy) -> dw
	KindConv2DBiasGrad   // (dy) -> db
	KindBatchNorm
	KindBatchNormParamGrad // (x, y, dy) -> (2, C): dgamma, dbeta
	KindBatchNormInputGrad // (x, gamma, dy, (2, C)) -> dx
	KindRow                // (2, C) -> row Slice.Offset, (C)
	KindReLU
	KindReLUGrad // (x, dy) -> dx
	KindAdd
	KindPReLU
	KindPReLUInputGrad // (x, alpha, dy) -> dx
	KindPReLUAlphaGrad // (x, dy) -> dalpha
	KindZeroPadShortcut
	KindZeroPadShortcutGrad // (dy) -> dx
	KindGlobalAvgPool
	KindGlobalAvgPoolGrad // (dy) -> dx
	KindMaxPool
	KindMaxPoolGrad // (x, dy) -> dx
	KindAvgPool
	KindAvgPoolGrad // (dy) -> dx
	KindFlatten
	KindFlattenGrad // (dy) -> dx
	KindLinear
	KindLinearDataGrad   // (w, dy) -> dx
	KindLinearWeightGrad // (x, dy) -> dw
	KindLinearBiasGrad   // (dy) -> db
	KindCrossEntropy
	KindCrossEntropyGrad // (logits, labels, loss, dloss) -> dlogits
	KindConcat
	KindConcatSlice // (dy) -> channels [Slice.Offset, +Slice.Width)
	KindDropout
	KindDropoutGrad // (y, dy) -> dx
	KindStochasticDepth
	KindStochasticDepthGrad // (y, dy) -> dx
	KindLayerNorm
	KindLayerNormInputGrad // (x, gamma, y, dy) -> dx
	KindLayerNormParamGrad // (x, y, dy) -> (2, D): dgamma, dbeta
	KindPin                // copies its input into Target
	kindEnd
)

var kindNames = [...]string{"Unknown", "Conv2D", "Conv2DDataGrad", "Conv2DFilterGrad", "Conv2DBiasGrad",
	"BatchNorm", "BatchNormParamGrad", "BatchNormInputGrad", "Row", "ReLU", "ReLUGrad", "Add",
	"PReLU", "PReLUInputGrad", "PReLUAlphaGrad", "ZeroPadShortcut", "ZeroPadShortcutGrad",
	"GlobalAvgPool", "GlobalAvgPoolGrad", "MaxPool", "MaxPoolGrad", "AvgPool", "AvgPoolGrad",
	"Flatten", "FlattenGrad", "Linear", "LinearDataGrad", "LinearWeightGrad", "LinearBiasGrad",
	"CrossEntropy", "CrossEntropyGrad", "Concat", "ConcatSlice", "Dropout", "DropoutGrad",
	"StochasticDepth", "StochasticDepthGrad", "LayerNorm", "LayerNormInputGrad", "LayerNormParamGrad", "Pin"}

func (k Kind) String() string {
	if k >= 0 && k < kindEnd {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Kinds lists every kind but KindUnknown (for back ends' completeness checks).
func Kinds() []Kind {
	out := make([]Kind, 0, kindEnd-1)
	for k := KindUnknown + 1; k < kindEnd; k++ {
		out = append(out, k)
	}
	return out
}

// Desc is an op's description: its kind and the attributes of that kind
// (the other fields are zero).
type Desc struct {
	Kind Kind
	// Conv is the geometry of the convolution kinds (strides and groups at
	// least 1).
	Conv ConvParams
	// Bias: a Conv2D or Linear adds its third input.
	Bias bool
	// Pool is the window of the max and average pooling kinds.
	Pool PoolAttrs
	// Pad is the channel padding and subsampling of the zero-pad shortcut kinds.
	Pad PadAttrs
	// Slice is the row of KindRow and the channels of KindConcatSlice.
	Slice SliceAttrs
	// Norm is the normalisation of the batch-norm (all fields) and layer-norm
	// (Eps) kinds, forward only: the gradients read their Forward's.
	Norm NormAttrs
	// Random is the stream of the dropout and stochastic-depth kinds.
	Random RandomAttrs
	// Target is the tensor a Pin copies into.
	Target *tensor.Dense
}

// PoolAttrs is a pooling window: kernel x kernel, moved by Stride, the input
// padded by Pad on every side.
type PoolAttrs struct{ Kernel, Stride, Pad int }

// PadAttrs maps (N, In, H, W) to (N, Out, ceil(H/Stride), ceil(W/Stride)):
// the input's channels start at channel Before() of the output.
type PadAttrs struct{ In, Out, Stride int }

// Before is the number of zero channels before the input's.
func (p PadAttrs) Before() int { return (p.Out - p.In) / 2 }

// SliceAttrs is the part [Offset, Offset+Width) of an axis.
type SliceAttrs struct{ Offset, Width int }

// NormAttrs are a normalisation's constants and, for batch norm, its running
// statistics (graph buffers the training forward updates in place).
type NormAttrs struct {
	Momentum, Eps           float64
	RunningMean, RunningVar *tensor.Dense
}

// RandomAttrs is a random op's stream (graph/ops/rng): its seed and its drop
// probability (dropout) or survival probability (stochastic depth). The draw
// counter is the op's state (RNGState), not part of its description.
type RandomAttrs struct {
	Seed     uint64
	Rate     float64
	Survival float64
}

// Describer is an op that describes itself; every op of the library is one.
type Describer interface {
	Describe() Desc
}

// Backward is a backward op that reads state its forward op saved (batch
// statistics, a mask, the softmax): a back end keeps that state for it.
type Backward interface {
	Forward() gorgonia.Op
}

// Describe is op's description, KindUnknown for an op that does not describe
// itself (Gorgonia's own ops).
func Describe(op gorgonia.Op) Desc {
	if d, ok := op.(Describer); ok {
		return d.Describe()
	}
	return Desc{}
}

func (op *Conv2DOp) Describe() Desc { return Desc{Kind: KindConv2D, Conv: op.p, Bias: op.bias} }
func (op *conv2DDataGradOp) Describe() Desc {
	return Desc{Kind: KindConv2DDataGrad, Conv: op.p}
}
func (op *conv2DFilterGradOp) Describe() Desc {
	return Desc{Kind: KindConv2DFilterGrad, Conv: op.p}
}
func (op *conv2DBiasGradOp) Describe() Desc { return Desc{Kind: KindConv2DBiasGrad} }

func (op *BatchNormOp) Describe() Desc {
	return Desc{Kind: KindBatchNorm, Norm: NormAttrs{Momentum: op.momentum, Eps: op.eps, RunningMean: op.runMean, RunningVar: op.runVar}}
}
func (op *bnParamGradOp) Describe() Desc       { return Desc{Kind: KindBatchNormParamGrad} }
func (op *bnParamGradOp) Forward() gorgonia.Op { return op.fwd }
func (op *bnInputGradOp) Describe() Desc       { return Desc{Kind: KindBatchNormInputGrad} }
func (op *bnInputGradOp) Forward() gorgonia.Op { return op.fwd }
func (op *normRowOp) Describe() Desc {
	return Desc{Kind: KindRow, Slice: SliceAttrs{Offset: op.row, Width: 1}}
}

func (op *ReLUOp) Describe() Desc         { return Desc{Kind: KindReLU} }
func (op *reluBackwardOp) Describe() Desc { return Desc{Kind: KindReLUGrad} }
func (op *AddOp) Describe() Desc          { return Desc{Kind: KindAdd} }

func (op *PReLUOp) Describe() Desc          { return Desc{Kind: KindPReLU} }
func (op *preluInputGradOp) Describe() Desc { return Desc{Kind: KindPReLUInputGrad} }
func (op *preluAlphaGradOp) Describe() Desc { return Desc{Kind: KindPReLUAlphaGrad} }

func (op *ZeroPadShortcutOp) Describe() Desc {
	return Desc{Kind: KindZeroPadShortcut, Pad: PadAttrs{In: op.c, Out: op.outC, Stride: op.stride}}
}
func (op *zeroPadBackwardOp) Describe() Desc {
	return Desc{Kind: KindZeroPadShortcutGrad, Pad: op.fwd.Describe().Pad}
}
func (op *zeroPadBackwardOp) Forward() gorgonia.Op { return op.fwd }

func (op *GlobalAvgPoolOp) Describe() Desc     { return Desc{Kind: KindGlobalAvgPool} }
func (op *globalAvgPoolGradOp) Describe() Desc { return Desc{Kind: KindGlobalAvgPoolGrad} }
func (op *poolOp) window() PoolAttrs {
	return PoolAttrs{Kernel: op.kernel, Stride: op.stride, Pad: op.pad}
}
func (op *MaxPool2DOp) Describe() Desc   { return Desc{Kind: KindMaxPool, Pool: op.window()} }
func (op *maxPoolGradOp) Describe() Desc { return Desc{Kind: KindMaxPoolGrad, Pool: op.window()} }
func (op *AvgPool2DOp) Describe() Desc   { return Desc{Kind: KindAvgPool, Pool: op.window()} }
func (op *avgPoolGradOp) Describe() Desc { return Desc{Kind: KindAvgPoolGrad, Pool: op.window()} }

func (op *FlattenOp) Describe() Desc     { return Desc{Kind: KindFlatten} }
func (op *flattenGradOp) Describe() Desc { return Desc{Kind: KindFlattenGrad} }

func (op *LinearOp) Describe() Desc { return Desc{Kind: KindLinear, Bias: op.bias} }
func (op *linearGradOp) Describe() Desc {
	kinds := [...]Kind{linearDataGrad: KindLinearDataGrad, linearWeightGrad: KindLinearWeightGrad, linearBiasGrad: KindLinearBiasGrad}
	return Desc{Kind: kinds[op.kind]}
}

func (op *CrossEntropyOp) Describe() Desc     { return Desc{Kind: KindCrossEntropy} }
func (op *ceBackwardOp) Describe() Desc       { return Desc{Kind: KindCrossEntropyGrad} }
func (op *ceBackwardOp) Forward() gorgonia.Op { return op.fwd }

func (op *ConcatOp) Describe() Desc { return Desc{Kind: KindConcat} }
func (op *concatSliceOp) Describe() Desc {
	return Desc{Kind: KindConcatSlice, Slice: SliceAttrs{Offset: op.off, Width: op.width}}
}

func (op *DropoutOp) Describe() Desc {
	return Desc{Kind: KindDropout, Random: RandomAttrs{Seed: op.seed, Rate: op.p}}
}
func (op *dropoutBackwardOp) Describe() Desc       { return Desc{Kind: KindDropoutGrad} }
func (op *dropoutBackwardOp) Forward() gorgonia.Op { return op.fwd }
func (op *StochasticDepthOp) Describe() Desc {
	return Desc{Kind: KindStochasticDepth, Random: RandomAttrs{Seed: op.seed, Survival: op.survival}}
}
func (op *stochDepthBackwardOp) Describe() Desc       { return Desc{Kind: KindStochasticDepthGrad} }
func (op *stochDepthBackwardOp) Forward() gorgonia.Op { return op.fwd }

func (op *LayerNormOp) Describe() Desc {
	return Desc{Kind: KindLayerNorm, Norm: NormAttrs{Eps: op.eps}}
}
func (op *lnInputGradOp) Describe() Desc       { return Desc{Kind: KindLayerNormInputGrad} }
func (op *lnInputGradOp) Forward() gorgonia.Op { return op.fwd }
func (op *lnParamGradOp) Describe() Desc       { return Desc{Kind: KindLayerNormParamGrad} }
func (op *lnParamGradOp) Forward() gorgonia.Op { return op.fwd }

func (op *PinOp) Describe() Desc { return Desc{Kind: KindPin, Target: op.target} }
