package ops

import (
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Cloner is implemented by the forward ops of this library: CloneOp returns
// an op of the same kind and configuration (geometry, rates, seeds, the
// draw counter of random ops) with state of its own: output and work
// buffers, values saved for the backward ops, the kernels' Env (until a
// compile gives it one), a fresh identity, and the mode switch and running
// statistics of the graph it is cloned for. graph.Rewrite clones every op
// it re-emits, so that a graph and its rewrite run concurrently.
type Cloner interface {
	gorgonia.Op
	CloneOp(to CloneTarget) gorgonia.Op
}

// CloneTarget is the graph an op is cloned for.
type CloneTarget struct {
	// Mode is the target graph's training/inference switch.
	Mode *Mode
	// Buffer maps a buffer of the source graph (batch norm's running
	// statistics) to the target graph's: the same tensor when the graphs
	// share their parameters, its copy when they do not. Nil: the same.
	Buffer func(*tensor.Dense) *tensor.Dense
}

func (to CloneTarget) buffer(t *tensor.Dense) *tensor.Dense {
	if to.Buffer == nil {
		return t
	}
	return to.Buffer(t)
}

// CloneOp is a fresh add (Cloner).
func (op *AddOp) CloneOp(CloneTarget) gorgonia.Op { return &AddOp{rank: op.rank, id: nextID()} }

// CloneOp is a fresh batch norm over the target's running statistics and
// mode (Cloner).
func (op *BatchNormOp) CloneOp(to CloneTarget) gorgonia.Op {
	return &BatchNormOp{rank: op.rank, momentum: op.momentum, eps: op.eps, mode: to.Mode,
		runMean: to.buffer(op.runMean), runVar: to.buffer(op.runVar), id: nextID()}
}

// CloneOp is a fresh concatenation (Cloner).
func (op *ConcatOp) CloneOp(CloneTarget) gorgonia.Op {
	return &ConcatOp{rank: op.rank, n: op.n, id: nextID()}
}

// CloneOp is a fresh convolution of the same geometry (Cloner).
func (op *Conv2DOp) CloneOp(CloneTarget) gorgonia.Op {
	return &Conv2DOp{p: op.p, withBias: op.withBias, id: nextID()}
}

// CloneOp is a fresh loss (Cloner).
func (op *CrossEntropyOp) CloneOp(CloneTarget) gorgonia.Op { return &CrossEntropyOp{id: nextID()} }

// CloneOp is a fresh dropout on the target's mode, with the same seed and
// draw counter, so it draws the masks the source would draw next (Cloner).
func (op *DropoutOp) CloneOp(to CloneTarget) gorgonia.Op {
	return &DropoutOp{rank: op.rank, p: op.p, mode: to.Mode, seed: op.seed, step: op.step, id: nextID()}
}

// CloneOp is a fresh flatten (Cloner).
func (op *FlattenOp) CloneOp(CloneTarget) gorgonia.Op { return &FlattenOp{rank: op.rank, id: nextID()} }

// CloneOp is a fresh layer norm (Cloner).
func (op *LayerNormOp) CloneOp(CloneTarget) gorgonia.Op {
	return &LayerNormOp{eps: op.eps, id: nextID()}
}

// CloneOp is a fresh linear layer (Cloner).
func (op *LinearOp) CloneOp(CloneTarget) gorgonia.Op {
	return &LinearOp{withBias: op.withBias, id: nextID()}
}

// CloneOp is a fresh max pooling of the same window (Cloner).
func (op *MaxPool2DOp) CloneOp(CloneTarget) gorgonia.Op {
	return &MaxPool2DOp{poolOp: op.poolOp.clone()}
}

// CloneOp is a fresh average pooling of the same window (Cloner).
func (op *AvgPool2DOp) CloneOp(CloneTarget) gorgonia.Op {
	return &AvgPool2DOp{poolOp: op.poolOp.clone()}
}

func (op *poolOp) clone() poolOp {
	return poolOp{kernel: op.kernel, stride: op.stride, pad: op.pad, id: nextID()}
}

// CloneOp is a fresh global average pooling (Cloner).
func (op *GlobalAvgPoolOp) CloneOp(CloneTarget) gorgonia.Op { return &GlobalAvgPoolOp{id: nextID()} }

// CloneOp is a fresh parametric rectifier (Cloner).
func (op *PReLUOp) CloneOp(CloneTarget) gorgonia.Op { return &PReLUOp{rank: op.rank, id: nextID()} }

// CloneOp is a fresh rectifier (Cloner).
func (op *ReLUOp) CloneOp(CloneTarget) gorgonia.Op { return &ReLUOp{rank: op.rank, id: nextID()} }

// CloneOp is a fresh stochastic-depth gate on the target's mode, with the
// same seed and draw counter (Cloner).
func (op *StochasticDepthOp) CloneOp(to CloneTarget) gorgonia.Op {
	return &StochasticDepthOp{rank: op.rank, survival: op.survival, mode: to.Mode, seed: op.seed, step: op.step, id: nextID()}
}

// CloneOp is a fresh zero-padding shortcut of the same geometry (Cloner).
func (op *ZeroPadShortcutOp) CloneOp(CloneTarget) gorgonia.Op {
	return &ZeroPadShortcutOp{outC: op.outC, stride: op.stride, c: op.c, h: op.h, w: op.w, id: nextID()}
}
