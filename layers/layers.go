// Package layers builds network layers as plain functions over a
// *graph.Graph, in the style of GoMLX's ml/layers: each call creates the
// layer's parameters (and buffers) under the graph's current name scope and
// returns the layer's output node.
//
//	h, err := layers.Conv(g, x, 64, 3, layers.Name("conv1"), layers.Stride(2))
//	h, err = layers.BatchNorm(g, h, layers.Name("bn1"))
//
// creates "<scope>/conv1/weight", "<scope>/bn1/gamma", "<scope>/bn1/beta" and
// the buffers "<scope>/bn1/running_mean", "<scope>/bn1/running_var". Scopes
// come from graph.Graph.Within and graph.Graph.Build, so names are stable
// and unique: "stage2/block3/conv1/weight".
//
// Defaults follow the original training code of the paper's networks:
// convolutions are bias-free ("same" padding, He-normal with fan-out, as in
// fb.resnet.torch and torchvision), batch norm starts at gamma=1, beta=0 with
// momentum 0.1 and eps 1e-5, fully-connected layers use PyTorch's default
// uniform initialisation, and every parameter is subject to weight decay
// unless NoDecay is given.
package layers

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// HeNormalFan is N(0, 2/fan) for an explicit fan, e.g. to initialise a bias
// the way He et al. initialise the weights of its layer.
func HeNormalFan(fan int) graph.Init {
	return func(rng *rand.Rand, _ []int, t *tensor.Dense) {
		std := math.Sqrt(2 / float64(fan))
		switch d := t.Data().(type) {
		case []float32:
			for i := range d {
				d[i] = float32(rng.NormFloat64() * std)
			}
		case []float64:
			for i := range d {
				d[i] = rng.NormFloat64() * std
			}
		}
	}
}

// within runs build in the scope name and prefixes its error with the
// layer kind and full name.
func within(g *graph.Graph, kind, name string, build func() (*gorgonia.Node, error)) (*gorgonia.Node, error) {
	var out *gorgonia.Node
	full := name
	if s := g.Scope(); s != "" {
		full = s + "/" + name
	}
	err := g.Within(name, func() error {
		var err error
		out, err = build()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", kind, full, err)
	}
	return out, nil
}

// Conv is a 2-D convolution of x (N, C, H, W) with filters square kernels
// of size kernel: parameter "weight" (filters, C/groups, kernel, kernel) and,
// with Bias(true), "bias" (filters).
// Options: Name, Stride, Pad, Groups, Bias, Init, BiasInit.
func Conv(g *graph.Graph, x *gorgonia.Node, filters, kernel int, opts ...Option) (*gorgonia.Node, error) {
	c, err := parse("Conv", convKeys, opts)
	if err != nil {
		return nil, err
	}
	if x.Dims() != 4 {
		return nil, fmt.Errorf("Conv: input has shape %v, want (N, C, H, W)", x.Shape())
	}
	in := x.Shape()[1]
	switch {
	case filters < 1 || kernel < 1 || c.stride < 1 || c.pad < 0:
		return nil, fmt.Errorf("Conv: filters %d, kernel %d, stride %d, pad %d: want positive sizes", filters, kernel, c.stride, c.pad)
	case c.groups < 1 || in%c.groups != 0 || filters%c.groups != 0:
		return nil, fmt.Errorf("Conv: %d groups do not divide %d input and %d output channels", c.groups, in, filters)
	}
	if !c.padSet {
		c.pad = kernel / 2
	}
	if c.init == nil {
		c.init = graph.HeNormalFanOut()
	}
	if c.biasInit == nil {
		c.biasInit = graph.Constant(0)
	}
	return within(g, "conv", scopeName(g, c, "conv"), func() (*gorgonia.Node, error) {
		w := g.NewParam("weight", []int{filters, in / c.groups, kernel, kernel}, c.init, false)
		var b *gorgonia.Node
		if c.biasSet && c.bias {
			b = g.NewParam("bias", []int{filters}, c.biasInit, false)
		}
		return ops.Conv2D(x, w, b, ops.ConvParams{StrideH: c.stride, StrideW: c.stride, PadH: c.pad, PadW: c.pad, Groups: c.groups})
	})
}

// BatchNorm normalises x (N, C, H, W) or (N, C) per channel: parameters
// "gamma" (C, ones) and "beta" (C, zeros), buffers "running_mean" (zeros)
// and "running_var" (ones). It follows the graph's Mode: batch statistics
// while training, running statistics in inference.
// Options: Name, Momentum, Eps, NoDecay.
func BatchNorm(g *graph.Graph, x *gorgonia.Node, opts ...Option) (*gorgonia.Node, error) {
	c, err := parse("BatchNorm", bnKeys, opts)
	if err != nil {
		return nil, err
	}
	if x.Dims() != 4 && x.Dims() != 2 {
		return nil, fmt.Errorf("BatchNorm: input has shape %v, want (N, C, H, W) or (N, C)", x.Shape())
	}
	ch := x.Shape()[1]
	return within(g, "batch norm", scopeName(g, c, "bn"), func() (*gorgonia.Node, error) {
		gamma := g.NewParam("gamma", []int{ch}, graph.Constant(1), c.noDecay)
		beta := g.NewParam("beta", []int{ch}, graph.Constant(0), c.noDecay)
		mean := g.NewBuffer("running_mean", []int{ch}, 0)
		variance := g.NewBuffer("running_var", []int{ch}, 1)
		return ops.BatchNorm(x, gamma, beta, ops.BatchNormConfig{
			Momentum: c.momentum, Eps: c.eps, Mode: g.Mode(), RunningMean: mean, RunningVar: variance,
		})
	})
}

// Dense is a fully-connected layer y = x Wᵀ + b with "weight" (units, In)
// and "bias" (units); an input of higher rank is flattened to (N, In) first.
// Defaults: PyTorch's U(-1/√In, 1/√In) for weight and bias.
// Options: Name, Bias, Init, BiasInit.
func Dense(g *graph.Graph, x *gorgonia.Node, units int, opts ...Option) (*gorgonia.Node, error) {
	c, err := parse("Dense", denseKeys, opts)
	if err != nil {
		return nil, err
	}
	if units < 1 || x.Dims() < 2 {
		return nil, fmt.Errorf("Dense: %d units on input of shape %v: want units ≥ 1 and input (N, ...)", units, x.Shape())
	}
	if x.Dims() > 2 {
		if x, err = ops.Flatten(x); err != nil {
			return nil, fmt.Errorf("Dense: %w", err)
		}
	}
	in := x.Shape()[1]
	if c.init == nil {
		c.init = graph.Uniform(0)
	}
	if c.biasInit == nil {
		c.biasInit = graph.Uniform(in)
	}
	bias := !c.biasSet || c.bias
	return within(g, "dense", scopeName(g, c, "fc"), func() (*gorgonia.Node, error) {
		w := g.NewParam("weight", []int{units, in}, c.init, false)
		var b *gorgonia.Node
		if bias {
			b = g.NewParam("bias", []int{units}, c.biasInit, false)
		}
		return ops.Linear(x, w, b)
	})
}

// LayerNorm normalises each row of x (N, D): "gamma" (D, ones) and "beta"
// (D, zeros). Options: Name, Eps, NoDecay.
func LayerNorm(g *graph.Graph, x *gorgonia.Node, opts ...Option) (*gorgonia.Node, error) {
	c, err := parse("LayerNorm", lnKeys, opts)
	if err != nil {
		return nil, err
	}
	if x.Dims() != 2 {
		return nil, fmt.Errorf("LayerNorm: input has shape %v, want (N, D)", x.Shape())
	}
	d := x.Shape()[1]
	return within(g, "layer norm", scopeName(g, c, "ln"), func() (*gorgonia.Node, error) {
		gamma := g.NewParam("gamma", []int{d}, graph.Constant(1), c.noDecay)
		beta := g.NewParam("beta", []int{d}, graph.Constant(0), c.noDecay)
		return ops.LayerNorm(x, gamma, beta, c.eps)
	})
}

// PReLU is the parametric rectifier with one learnt slope per channel
// (dimension 1 of x): "alpha" (C), initialised to 0.25 as in He et al. 2015.
// Options: Name, Init, NoDecay.
func PReLU(g *graph.Graph, x *gorgonia.Node, opts ...Option) (*gorgonia.Node, error) {
	c, err := parse("PReLU", preluKeys, opts)
	if err != nil {
		return nil, err
	}
	if x.Dims() < 2 {
		return nil, fmt.Errorf("PReLU: input has shape %v, want (N, C, ...)", x.Shape())
	}
	if c.init == nil {
		c.init = graph.Constant(0.25)
	}
	return within(g, "prelu", scopeName(g, c, "prelu"), func() (*gorgonia.Node, error) {
		alpha := g.NewParam("alpha", []int{x.Shape()[1]}, c.init, c.noDecay)
		return ops.PReLU(x, alpha)
	})
}

// ReLU is the rectifier, the node the erase pass removes.
func ReLU(x *gorgonia.Node) (*gorgonia.Node, error) { return ops.ReLU(x) }

// Dropout zeroes each element with probability p while the graph trains
// and is the identity in inference; its seed is drawn from g.Rand(). With
// p = 0 it returns x itself and adds no node.
func Dropout(g *graph.Graph, x *gorgonia.Node, p float64) (*gorgonia.Node, error) {
	if p < 0 || p >= 1 {
		return nil, fmt.Errorf("Dropout: rate %g not in [0, 1)", p)
	}
	if p == 0 {
		return x, nil
	}
	return ops.Dropout(x, p, g.Mode(), g.Rand().Uint64())
}

// bnName derives a batch norm's name from its convolution's:
// "conv1" -> "bn1", "conv" -> "bn", "proj" -> "proj_bn".
func bnName(conv string) string {
	if rest, ok := strings.CutPrefix(conv, "conv"); ok {
		return "bn" + rest
	}
	return conv + "_bn"
}

// ConvBN is Conv followed by BatchNorm. Name names the convolution; the
// batch norm takes the matching name ("conv2" -> "bn2", "proj" -> "proj_bn").
// Options: those of Conv and of BatchNorm.
func ConvBN(g *graph.Graph, x *gorgonia.Node, filters, kernel int, opts ...Option) (*gorgonia.Node, error) {
	c, err := parse("ConvBN", append(append([]string{}, convKeys...), bnKeys[1:]...), opts)
	if err != nil {
		return nil, err
	}
	conv := scopeName(g, c, "conv")
	convOpts := append(split(opts, convKeys[1:]), Name(conv))
	bnOpts := append(split(opts, bnKeys[1:]), Name(bnName(conv)))
	h, err := Conv(g, x, filters, kernel, convOpts...)
	if err != nil {
		return nil, err
	}
	return BatchNorm(g, h, bnOpts...)
}

// ConvBNReLU is Conv, BatchNorm, ReLU: the after-activation unit.
func ConvBNReLU(g *graph.Graph, x *gorgonia.Node, filters, kernel int, opts ...Option) (*gorgonia.Node, error) {
	h, err := ConvBN(g, x, filters, kernel, opts...)
	if err != nil {
		return nil, err
	}
	return ops.ReLU(h)
}

// BNReLU is BatchNorm then ReLU: the pre-activation unit.
// Options: those of BatchNorm.
func BNReLU(g *graph.Graph, x *gorgonia.Node, opts ...Option) (*gorgonia.Node, error) {
	h, err := BatchNorm(g, x, opts...)
	if err != nil {
		return nil, err
	}
	return ops.ReLU(h)
}
