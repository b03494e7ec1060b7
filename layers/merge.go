package layers

import (
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
)

// Add is the element-wise sum of two tensors of one shape: a residual
// block's merge of its branch and shortcut.
func Add(a, b *gorgonia.Node) (*gorgonia.Node, error) { return ops.Add(a, b) }

// Concat joins (N, C_i, H, W) tensors along the channels, as an inception
// module joins its branches.
func Concat(xs ...*gorgonia.Node) (*gorgonia.Node, error) { return ops.Concat(xs...) }

// ZeroPadShortcut is option A of He et al. 2016: the identity shortcut of
// a block that changes shape, subsampled by stride and zero-padded to out
// channels; it has no parameters.
func ZeroPadShortcut(x *gorgonia.Node, out, stride int) (*gorgonia.Node, error) {
	return ops.ZeroPadShortcut(x, out, stride)
}

// StochasticDepth drops a residual branch while the graph trains, keeping
// it with probability survival, and scales it by survival in inference
// (Huang et al. 2016); its seed is drawn from g.Rand().
func StochasticDepth(g *graph.Graph, branch *gorgonia.Node, survival float64) (*gorgonia.Node, error) {
	return ops.StochasticDepth(branch, survival, g.Mode(), g.Rand().Uint64())
}

// SoftmaxCrossEntropy is the mean softmax cross-entropy of logits (N,
// classes) against int labels (N); label -1 marks a row that counts
// nowhere. The loss node's op reports the batch's top-k counts.
func SoftmaxCrossEntropy(logits, labels *gorgonia.Node) (*gorgonia.Node, error) {
	loss, _, err := ops.SoftmaxCrossEntropy(logits, labels)
	return loss, err
}
