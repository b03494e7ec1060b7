// Package arch builds every network of the EraseReLU paper as a
// module-annotated graph: one parameterised constructor per family (the
// torchvision resnet.py way), with depth, width, block type, classes, input
// size, dtype and batch size as parameters, built of named blocks
// (BasicBlock, Bottleneck, PreActBlock, ...) that other networks can reuse.
//
// Every module the paper counts (a residual block, a VGG unit, an inception
// module, an MLP layer) is recorded with graph.Graph.Build, so the erase pass
// can select it; stages are name scopes ("stage2/block3"), not modules.
// See docs/architectures.md for the exact layer lists and the choices made
// where the papers leave details open.
package arch

import (
	"fmt"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/layers"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Config selects and sizes an architecture.
type Config struct {
	// Arch is the architecture name (see List and Patterns), e.g. "resnet-110".
	Arch string
	// Classes is the number of classes (default: the family's dataset, 10
	// for CIFAR-10/MNIST, 1000 for ImageNet).
	Classes int
	// Batch is the batch size of the input (default 1).
	Batch int
	// InputShape is (C, H, W) of one image (default: 3x32x32 for CIFAR
	// families, 1x28x28 for the MLP, which flattens it, 3x224x224 for
	// ImageNet). The scalar net ignores it.
	InputShape [3]int
	// Dtype is tensor.Float32 (default) or tensor.Float64.
	Dtype tensor.Dtype
	// Seed drives initialisation and op randomness.
	Seed uint64
	// StochasticDepth drops residual branches (Huang et al. 2016): survival
	// probability decaying linearly from 1 to 0.5 at the last block, scaling
	// at test time. Residual families only.
	StochasticDepth bool
	// Dropout overrides the family's dropout rate (MLP: 0.1 between layers,
	// WRN: 0.3 between the two convolutions of a block for the -d names, else
	// none); 0 keeps the default, a negative value turns dropout off.
	// Only the MLP and WRN families have dropout.
	Dropout float64
	// AfterActivation converts a pre-activation family (preact-resnet, wrn,
	// imagenet-preact-resnet) to after-activation, as section 3.1 does before
	// erasing: the same convolutions, with BN and ReLU after each of them.
	AfterActivation bool
}

// Build constructs the configured network. Its inputs are "x" (Batch, C, H,
// W), or (Batch, C*H*W) for the MLP and (Batch, 1) for the scalar net, and
// "y", the labels (Batch) of dtype tensor.Int; its outputs "logits" (Batch,
// Classes) and "loss", the mean softmax cross-entropy. The scalar net instead
// takes a float target "y" (Batch, 1) and outputs "y_hat" (Batch, 1) and
// "loss", the mean squared error.
func Build(cfg Config) (*graph.Graph, error) {
	s, err := Parse(cfg.Arch)
	if err != nil {
		return nil, err
	}
	in, classes := s.defaults()
	if cfg.Classes == 0 {
		cfg.Classes = classes
	}
	if cfg.InputShape == [3]int{} {
		cfg.InputShape = in
	}
	if cfg.Batch == 0 {
		cfg.Batch = 1
	}
	if cfg.Dtype == (tensor.Dtype{}) {
		cfg.Dtype = tensor.Float32
	}
	switch {
	case cfg.Classes < 1 || cfg.Batch < 1:
		return nil, fmt.Errorf("%s: classes %d, batch %d: want positive", s.Name, cfg.Classes, cfg.Batch)
	case cfg.Dtype != tensor.Float32 && cfg.Dtype != tensor.Float64:
		return nil, fmt.Errorf("%s: dtype %v: want float32 or float64", s.Name, cfg.Dtype)
	case cfg.InputShape[0] < 1 || cfg.InputShape[1] < 1 || cfg.InputShape[2] < 1:
		return nil, fmt.Errorf("%s: input shape %v: want positive (C, H, W)", s.Name, cfg.InputShape)
	case cfg.StochasticDepth && !s.Residual():
		return nil, fmt.Errorf("%s: stochastic depth needs a residual family (resnet, preact-resnet, wrn, resnext, fig3-res, imagenet-*)", s.Name)
	case cfg.AfterActivation && !s.PreActivation():
		return nil, fmt.Errorf("%s: the after-activation conversion applies to pre-activation families (preact-resnet, wrn, imagenet-preact-resnet)", s.Name)
	case cfg.Dropout != 0 && s.Family != MLPNet && s.Family != WideResNet:
		return nil, fmt.Errorf("%s: only the mlp and wrn families have dropout", s.Name)
	case cfg.Dropout >= 1:
		return nil, fmt.Errorf("%s: dropout %g: want a rate below 1", s.Name, cfg.Dropout)
	}
	drop := s.Dropout
	switch {
	case cfg.Dropout < 0:
		drop = 0
	case cfg.Dropout > 0:
		drop = cfg.Dropout
	}

	g := graph.New(cfg.Dtype, cfg.Seed)
	b := &builder{g: g, cfg: cfg, spec: s, drop: drop}
	if s.Family == ScalarNet {
		return g, b.scalar()
	}
	c, h, w := cfg.InputShape[0], cfg.InputShape[1], cfg.InputShape[2]
	var x *gorgonia.Node
	if s.Family == MLPNet {
		x = g.NewInput("x", cfg.Dtype, cfg.Batch, c*h*w)
	} else {
		x = g.NewInput("x", cfg.Dtype, cfg.Batch, c, h, w)
	}
	y := g.NewInput("y", tensor.Int, cfg.Batch)

	var logits *gorgonia.Node
	switch s.Family {
	case Fig3VGG, Fig3Res:
		logits, err = b.fig3(x)
	case MLPNet:
		logits, err = b.mlp(x)
	case InceptionV2:
		logits, err = b.inception(x)
	default:
		logits, err = b.residual(x)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	loss, err := layers.SoftmaxCrossEntropy(logits, y)
	if err != nil {
		return nil, fmt.Errorf("%s: loss: %w", s.Name, err)
	}
	g.SetOutput("logits", logits)
	g.SetOutput("loss", loss)
	return g, nil
}

// builder carries the configuration through a family's constructor.
type builder struct {
	g    *graph.Graph
	cfg  Config
	spec Spec
	drop float64
	// stochastic depth: blocks built so far and in all.
	block, blocks int
}

// Stats summarises a graph.
type Stats struct {
	// Params is the number of trainable scalars.
	Params int
	// MACs is the multiply-accumulates of the convolutions and
	// fully-connected layers for one input example.
	MACs int64
	// Modules is the number of leaf modules (the paper's f_i).
	Modules int
	// ReLUs is the number of ReLUs in the forward graph (graph.IsReLU: a
	// gorgonia.Rectify counts once).
	ReLUs int
}

// Count measures a graph: parameters, MACs per example (found by walking
// the forward graph, every node that takes a 4-D parameter being a
// convolution and every node that takes a 2-D parameter a fully-connected
// layer), modules and ReLUs. Gradient nodes added by compilation are not
// counted.
func Count(g *graph.Graph) Stats {
	st := Stats{Params: g.ParamCount(), Modules: len(g.Leaves())}
	params := map[*gorgonia.Node]bool{}
	for _, p := range g.Params() {
		params[p.Node] = true
	}
	seen := map[*gorgonia.Node]bool{}
	var stack []*gorgonia.Node
	for _, name := range g.OutputNames() {
		n, _ := g.Output(name)
		stack = append(stack, n)
	}
	for _, m := range g.Modules() {
		stack = append(stack, m.Output)
	}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n == nil || seen[n] {
			continue
		}
		seen[n] = true
		if n.IsVar() {
			continue
		}
		if graph.IsReLU(n) {
			st.ReLUs++
		}
		kids := graph.Children(n)
		for _, k := range kids {
			if !params[k] {
				continue
			}
			out := n.Shape()
			switch {
			case k.Dims() == 4 && out.Dims() == 4:
				st.MACs += int64(k.Shape().TotalSize()) * int64(out[2]*out[3])
			case k.Dims() == 2 && out.Dims() == 2:
				st.MACs += int64(k.Shape().TotalSize())
			}
		}
		stack = append(stack, kids...)
	}
	return st
}
