package arch

import (
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/layers"
	"gorgonia.org/gorgonia"
)

// The blocks of the paper's families, as torchvision's resnet.py names
// them: each builds one module's layers in the graph's current scope
// (record it as a module with graph.Graph.Build) and can be used alone to
// build other networks.

// Shortcut is how a residual block matches its input to its output when
// their shapes differ.
type Shortcut int

const (
	// ZeroPad is option A of He et al. 2016: strided identity, zero channels.
	ZeroPad Shortcut = iota
	// ProjectionBN is option B: 1x1 convolution and batch norm.
	ProjectionBN
	// Projection is a bare 1x1 convolution, as pre-activation networks
	// use; in a pre-activation block it reads the pre-activated input.
	Projection
)

// Block is the shape of one residual block.
type Block struct {
	// In and Out are the input and output channels; Width is a basic
	// block's channels, a bottleneck's inner width (of its 3x3 conv).
	In, Width, Out int
	// Stride is the block's downsampling (on the 3x3 conv, as
	// fb.resnet.torch and torchvision).
	Stride int
	// Groups splits the 3x3 conv of a bottleneck (ResNeXt's cardinality);
	// 0 means 1.
	Groups int
	// Shortcut is used when the block changes shape (Stride != 1 or In != Out).
	Shortcut Shortcut
	// Dropout is the rate between a basic block's two convolutions (WRN).
	Dropout float64
	// Survival, when not 0, is the probability the residual branch is kept
	// while training (stochastic depth).
	Survival float64
	// Preactivated says a pre-activation block's input is already batch
	// normalised and rectified (the first block after the ImageNet stem),
	// so the block does not do it again.
	Preactivated bool
}

func (k Block) changes() bool { return k.Stride != 1 || k.In != k.Out }

// BlockFunc builds one residual block on x.
type BlockFunc func(g *graph.Graph, x *gorgonia.Node, k Block) (*gorgonia.Node, error)

// BasicBlock is conv3x3-BN-ReLU-[dropout]-conv3x3-BN, add, ReLU.
func BasicBlock(g *graph.Graph, x *gorgonia.Node, k Block) (*gorgonia.Node, error) {
	h, err := layers.ConvBNReLU(g, x, k.Width, 3, layers.Name("conv1"), layers.Stride(k.Stride))
	if err != nil {
		return nil, err
	}
	if h, err = layers.Dropout(g, h, k.Dropout); err != nil {
		return nil, err
	}
	if h, err = layers.ConvBN(g, h, k.Out, 3, layers.Name("conv2")); err != nil {
		return nil, err
	}
	return addReLU(g, h, x, k)
}

// Bottleneck is conv1x1-BN-ReLU-conv3x3(stride, groups)-BN-ReLU-conv1x1-BN,
// add, ReLU.
func Bottleneck(g *graph.Graph, x *gorgonia.Node, k Block) (*gorgonia.Node, error) {
	h, err := layers.ConvBNReLU(g, x, k.Width, 1, layers.Name("conv1"))
	if err != nil {
		return nil, err
	}
	if h, err = layers.ConvBNReLU(g, h, k.Width, 3, layers.Name("conv2"), layers.Stride(k.Stride), layers.Groups(max(k.Groups, 1))); err != nil {
		return nil, err
	}
	if h, err = layers.ConvBN(g, h, k.Out, 1, layers.Name("conv3")); err != nil {
		return nil, err
	}
	return addReLU(g, h, x, k)
}

// PreActBlock is BN-ReLU-conv3x3-BN-ReLU-[dropout]-conv3x3, add.
func PreActBlock(g *graph.Graph, x *gorgonia.Node, k Block) (*gorgonia.Node, error) {
	pre, err := preactivate(g, x, k)
	if err != nil {
		return nil, err
	}
	h, err := layers.Conv(g, pre, k.Width, 3, layers.Name("conv1"), layers.Stride(k.Stride))
	if err != nil {
		return nil, err
	}
	if h, err = layers.BNReLU(g, h, layers.Name("bn2")); err != nil {
		return nil, err
	}
	if h, err = layers.Dropout(g, h, k.Dropout); err != nil {
		return nil, err
	}
	if h, err = layers.Conv(g, h, k.Out, 3, layers.Name("conv2")); err != nil {
		return nil, err
	}
	return add(g, h, x, pre, k)
}

// PreActBottleneck is BN-ReLU-conv1x1-BN-ReLU-conv3x3(stride, groups)-BN-ReLU-conv1x1, add.
func PreActBottleneck(g *graph.Graph, x *gorgonia.Node, k Block) (*gorgonia.Node, error) {
	pre, err := preactivate(g, x, k)
	if err != nil {
		return nil, err
	}
	h, err := layers.Conv(g, pre, k.Width, 1, layers.Name("conv1"))
	if err != nil {
		return nil, err
	}
	if h, err = layers.BNReLU(g, h, layers.Name("bn2")); err != nil {
		return nil, err
	}
	if h, err = layers.Conv(g, h, k.Width, 3, layers.Name("conv2"), layers.Stride(k.Stride), layers.Groups(max(k.Groups, 1))); err != nil {
		return nil, err
	}
	if h, err = layers.BNReLU(g, h, layers.Name("bn3")); err != nil {
		return nil, err
	}
	if h, err = layers.Conv(g, h, k.Out, 1, layers.Name("conv3")); err != nil {
		return nil, err
	}
	return add(g, h, x, pre, k)
}

// Fig3ResModule is the residual-style module of Figure 3(b):
// ReLU(shortcut(x) + BN(conv3x3(x))), one ReLU, at its end.
func Fig3ResModule(g *graph.Graph, x *gorgonia.Node, k Block) (*gorgonia.Node, error) {
	r, err := layers.ConvBN(g, x, k.Out, 3, layers.Name("conv"), layers.Stride(k.Stride))
	if err != nil {
		return nil, err
	}
	return addReLU(g, r, x, k)
}

// InceptionModule is an Inception-V2 module for CIFAR with base width b:
// four branches, each ending in BN and ReLU, concatenated, with output
// channels b : 8b : 2b : b (1 : 8 : 2 : 1):
//
//	1x1 conv b
//	1x1 conv b, 3x3 conv 8b
//	1x1 conv b, 3x3 conv 2b, 3x3 conv 2b (the "5x5" as two 3x3)
//	3x3 avg pool (stride 1), 1x1 conv b
func InceptionModule(g *graph.Graph, x *gorgonia.Node, base int) (*gorgonia.Node, error) {
	type conv struct {
		name          string
		width, kernel int
	}
	run := func(h *gorgonia.Node, convs ...conv) (*gorgonia.Node, error) {
		var err error
		for _, c := range convs {
			if h, err = layers.ConvBNReLU(g, h, c.width, c.kernel, layers.Name(c.name)); err != nil {
				return nil, err
			}
		}
		return h, nil
	}
	b1, err := run(x, conv{"conv1x1", base, 1})
	if err != nil {
		return nil, err
	}
	b3, err := run(x, conv{"conv3x3_reduce", base, 1}, conv{"conv3x3", 8 * base, 3})
	if err != nil {
		return nil, err
	}
	b5, err := run(x, conv{"conv5x5_reduce", base, 1}, conv{"conv5x5a", 2 * base, 3}, conv{"conv5x5b", 2 * base, 3})
	if err != nil {
		return nil, err
	}
	p, err := layers.AvgPool(x, 3, 1, 1)
	if err != nil {
		return nil, err
	}
	bp, err := run(p, conv{"conv_pool", base, 1})
	if err != nil {
		return nil, err
	}
	return layers.Concat(b1, b3, b5, bp)
}

// MLPLayer is a layer of the MNIST MLP of Figure 3(c): FC (no bias: BN
// follows), BN, ReLU, dropout. Its output is the dropout; the ReLU the
// erase pass removes is the node before it.
func MLPLayer(g *graph.Graph, x *gorgonia.Node, units int, dropout float64) (*gorgonia.Node, error) {
	h, err := layers.Dense(g, x, units, layers.Name("fc"), layers.Bias(false))
	if err != nil {
		return nil, err
	}
	if h, err = layers.BNReLU(g, h, layers.Name("bn")); err != nil {
		return nil, err
	}
	return layers.Dropout(g, h, dropout)
}

// ScalarModule is a residual module of Figure 4's scalar net:
// ReLU(h + LayerNorm(FC(h))), the module of Figure 2 with conv and BN
// replaced by FC and LayerNorm, He-initialised.
func ScalarModule(g *graph.Graph, h *gorgonia.Node) (*gorgonia.Node, error) {
	r, err := heDense(g, h, h.Shape()[1])
	if err != nil {
		return nil, err
	}
	if r, err = layers.LayerNorm(g, r, layers.Name("ln")); err != nil {
		return nil, err
	}
	if r, err = layers.Add(h, r); err != nil {
		return nil, err
	}
	return layers.ReLU(r)
}

// heDense is a fully-connected layer "fc" with weights and bias drawn from
// N(0, 2/fan_in) (He et al. 2015), as the scalar net of Figure 4 has.
func heDense(g *graph.Graph, h *gorgonia.Node, units int) (*gorgonia.Node, error) {
	in := h.Shape()[1]
	return layers.Dense(g, h, units, layers.Name("fc"), layers.Init(graph.HeNormal()), layers.BiasInit(layers.HeNormalFan(in)))
}

// preactivate is a pre-activation block's BN-ReLU of its input "bn1"
// (the input itself when it is already pre-activated).
func preactivate(g *graph.Graph, x *gorgonia.Node, k Block) (*gorgonia.Node, error) {
	if k.Preactivated {
		return x, nil
	}
	return layers.BNReLU(g, x, layers.Name("bn1"))
}

// shortcut returns the block's shortcut: x itself, or x (or, for a
// pre-activation projection, the pre-activated input pre) matched in shape.
func shortcut(g *graph.Graph, x, pre *gorgonia.Node, k Block) (*gorgonia.Node, error) {
	if !k.changes() {
		return x, nil
	}
	switch k.Shortcut {
	case ZeroPad:
		return layers.ZeroPadShortcut(x, k.Out, k.Stride)
	case ProjectionBN:
		return layers.ConvBN(g, x, k.Out, 1, layers.Name("shortcut"), layers.Stride(k.Stride))
	default:
		return layers.Conv(g, pre, k.Out, 1, layers.Name("shortcut"), layers.Stride(k.Stride))
	}
}

// add adds the (stochastically dropped) branch to the shortcut of x.
func add(g *graph.Graph, branch, x, pre *gorgonia.Node, k Block) (*gorgonia.Node, error) {
	sc, err := shortcut(g, x, pre, k)
	if err != nil {
		return nil, err
	}
	if k.Survival != 0 {
		if branch, err = layers.StochasticDepth(g, branch, k.Survival); err != nil {
			return nil, err
		}
	}
	return layers.Add(sc, branch)
}

// addReLU ends an after-activation block: the branch plus the shortcut of
// x, then the module's trailing ReLU (the one EraseReLU removes).
func addReLU(g *graph.Graph, branch, x *gorgonia.Node, k Block) (*gorgonia.Node, error) {
	h, err := add(g, branch, x, x, k)
	if err != nil {
		return nil, err
	}
	return layers.ReLU(h)
}
