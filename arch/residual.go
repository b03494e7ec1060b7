package arch

import (
	"fmt"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"github.com/eraserelu/eraserelu/layers"
	"gorgonia.org/gorgonia"
)

// shortcut is how a residual block matches dimensions when they change.
type shortcut int

const (
	// zeroPad is option A of He et al. 2016: strided identity, zero channels.
	zeroPad shortcut = iota
	// projBN is option B: 1x1 convolution and batch norm.
	projBN
	// proj is a bare 1x1 convolution, as pre-activation networks use; in a
	// pre-activation block it reads the pre-activated input.
	proj
)

// stage is one stage of a residual network.
type stage struct {
	blocks int
	width  int // basic: channels; bottleneck: inner width of the 3x3 conv
	out    int // output channels
	stride int
}

// resnet is the configuration of the one residual constructor.
type resnet struct {
	imagenetStem bool // 7x7/2 conv, BN, ReLU, 3x3/2 max pool; else a 3x3 conv
	stemWidth    int
	preact       bool // pre-activation blocks (before AfterActivation)
	after        bool // build the pre-activation net converted to after-activation
	bottleneck   bool
	groups       int
	shortcut     shortcut
	stages       []stage
}

// residualConfig maps a spec to the residual constructor's configuration.
func (b *builder) residualConfig() (resnet, error) {
	s := b.spec
	r := resnet{bottleneck: s.Bottleneck, groups: 1, preact: s.PreActivation(), after: b.cfg.AfterActivation}
	cifar := func(blocks, stem int, widths, outs []int, sc shortcut) {
		r.stemWidth, r.shortcut = stem, sc
		for i := range widths {
			st := 2
			if i == 0 {
				st = 1
			}
			r.stages = append(r.stages, stage{blocks: blocks, width: widths[i], out: outs[i], stride: st})
		}
	}
	switch s.Family {
	case ResNet, PreActResNet:
		sc := zeroPad
		if s.Bottleneck {
			// He 2016b: projection shortcuts for bottleneck nets; the
			// original (after-activation) ResNet-164 with BN, as in
			// fb.resnet.torch, the pre-activation one a bare conv.
			sc = projBN
			if s.Family == PreActResNet {
				sc = proj
			}
			n := (s.Depth - 2) / 9
			cifar(n, 16, []int{16, 32, 64}, []int{64, 128, 256}, sc)
		} else {
			n := (s.Depth - 2) / 6
			cifar(n, 16, []int{16, 32, 64}, []int{16, 32, 64}, sc)
		}
	case WideResNet:
		n, k := (s.Depth-4)/6, s.Width
		cifar(n, 16, []int{16 * k, 32 * k, 64 * k}, []int{16 * k, 32 * k, 64 * k}, proj)
	case ResNeXt:
		// Xie et al. 2017, CIFAR: 64-channel stem, 3 stages of (d-2)/9
		// blocks, outputs 256/512/1024, inner width C*w doubled per stage.
		n, cw := (s.Depth-2)/9, s.Cardinality*s.GroupWidth
		r.groups = s.Cardinality
		cifar(n, 64, []int{cw, 2 * cw, 4 * cw}, []int{256, 512, 1024}, projBN)
	case ImageNetResNet, ImageNetPreAct, ImageNetResNeXt:
		r.imagenetStem, r.stemWidth = true, 64
		r.shortcut = projBN
		if s.Family == ImageNetPreAct {
			r.shortcut = proj
		}
		base := 64
		if s.Family == ImageNetResNeXt {
			r.groups, base = s.Cardinality, s.Cardinality*s.GroupWidth
		}
		for i, n := range imagenetDepths[s.Depth] {
			st := stage{blocks: n, width: base << i, out: 64 << i, stride: 2}
			if r.bottleneck {
				st.out *= 4
			}
			if i == 0 {
				st.stride = 1
			}
			r.stages = append(r.stages, st)
		}
	default:
		return r, fmt.Errorf("family %s is not residual", s.Family)
	}
	return r, nil
}

// residual builds every residual family: stem, stages of blocks, head.
func (b *builder) residual(x *gorgonia.Node) (*gorgonia.Node, error) {
	r, err := b.residualConfig()
	if err != nil {
		return nil, err
	}
	g := b.g
	for _, st := range r.stages {
		b.blocks += st.blocks
	}
	// A pre-activation net whose stem ends in BN+ReLU (ImageNet) skips the
	// first block's own pre-activation (fb.resnet.torch preresnet.lua).
	preactStem := r.preact && !r.after && r.imagenetStem
	stemAct := !r.preact || r.after || r.imagenetStem
	h := x
	err = g.Within("stem", func() error {
		var err error
		if r.imagenetStem {
			if h, err = layers.Conv(g, h, r.stemWidth, 7, layers.Name("conv"), layers.Stride(2)); err != nil {
				return err
			}
		} else if h, err = layers.Conv(g, h, r.stemWidth, 3, layers.Name("conv")); err != nil {
			return err
		}
		if stemAct {
			if h, err = layers.BNReLU(g, h, layers.Name("bn")); err != nil {
				return err
			}
		}
		if r.imagenetStem {
			h, err = ops.MaxPool2D(h, 3, 2, 1)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	in := r.stemWidth
	for i, st := range r.stages {
		err := g.Within(fmt.Sprintf("stage%d", i+1), func() error {
			for j := 0; j < st.blocks; j++ {
				stride := 1
				if j == 0 {
					stride = st.stride
				}
				blk := block{in: in, width: st.width, out: st.out, stride: stride, groups: r.groups, shortcut: r.shortcut,
					skipPreact: preactStem && i == 0 && j == 0}
				var err error
				h, err = g.Build(fmt.Sprintf("block%d", j+1), graph.Residual, func() (*gorgonia.Node, error) {
					switch {
					case r.preact && !r.after && r.bottleneck:
						return b.preBottleneck(h, blk)
					case r.preact && !r.after:
						return b.preBasic(h, blk)
					case r.bottleneck:
						return b.bottleneck(h, blk)
					default:
						return b.basic(h, blk)
					}
				})
				if err != nil {
					return err
				}
				in = st.out
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return b.head(h, r.preact && !r.after)
}

// head is [BN, ReLU,] global average pool and the classifier.
func (b *builder) head(h *gorgonia.Node, preact bool) (*gorgonia.Node, error) {
	g := b.g
	var out *gorgonia.Node
	err := g.Within("head", func() error {
		var err error
		if preact {
			if h, err = layers.BNReLU(g, h, layers.Name("bn")); err != nil {
				return err
			}
		}
		if h, err = ops.GlobalAvgPool(h); err != nil {
			return err
		}
		out, err = layers.Dense(g, h, b.cfg.Classes, layers.Name("fc"))
		return err
	})
	return out, err
}

// block is one residual block's shape.
type block struct {
	in, width, out, stride, groups int
	shortcut                       shortcut
	skipPreact                     bool
}

func (k block) changes() bool { return k.stride != 1 || k.in != k.out }

// shortcutPath returns the block's shortcut: x itself, or x (or, for a
// pre-activation projection, the pre-activated input pre) matched in shape.
func (b *builder) shortcutPath(x, pre *gorgonia.Node, k block) (*gorgonia.Node, error) {
	if !k.changes() {
		return x, nil
	}
	switch k.shortcut {
	case zeroPad:
		return ops.ZeroPadShortcut(x, k.out, k.stride)
	case projBN:
		return layers.ConvBN(b.g, x, k.out, 1, layers.Name("shortcut"), layers.Stride(k.stride))
	default:
		return layers.Conv(b.g, pre, k.out, 1, layers.Name("shortcut"), layers.Stride(k.stride))
	}
}

// merge adds the (stochastically dropped) branch to the shortcut.
func (b *builder) merge(branch, sc *gorgonia.Node) (*gorgonia.Node, error) {
	b.block++
	if b.cfg.StochasticDepth {
		survival := 1 - float64(b.block)/float64(b.blocks)*0.5
		var err error
		if branch, err = ops.StochasticDepth(branch, survival, b.g.Mode(), b.g.Rand().Uint64()); err != nil {
			return nil, err
		}
	}
	return ops.Add(sc, branch)
}

// addReLU ends an after-activation block: the branch h plus the shortcut of
// x, then the module's trailing ReLU (the one EraseReLU removes).
func (b *builder) addReLU(h, x *gorgonia.Node, k block) (*gorgonia.Node, error) {
	sc, err := b.shortcutPath(x, x, k)
	if err != nil {
		return nil, err
	}
	if h, err = b.merge(h, sc); err != nil {
		return nil, err
	}
	return ops.ReLU(h)
}

// basic is conv3x3-BN-ReLU-[dropout]-conv3x3-BN, add, ReLU.
func (b *builder) basic(x *gorgonia.Node, k block) (*gorgonia.Node, error) {
	g := b.g
	h, err := layers.ConvBNReLU(g, x, k.width, 3, layers.Name("conv1"), layers.Stride(k.stride))
	if err != nil {
		return nil, err
	}
	if h, err = layers.Dropout(g, h, b.drop); err != nil {
		return nil, err
	}
	if h, err = layers.ConvBN(g, h, k.out, 3, layers.Name("conv2")); err != nil {
		return nil, err
	}
	return b.addReLU(h, x, k)
}

// bottleneck is conv1x1-BN-ReLU-conv3x3(stride, groups)-BN-ReLU-conv1x1-BN,
// add, ReLU (the stride on the 3x3, as fb.resnet.torch and torchvision).
func (b *builder) bottleneck(x *gorgonia.Node, k block) (*gorgonia.Node, error) {
	g := b.g
	h, err := layers.ConvBNReLU(g, x, k.width, 1, layers.Name("conv1"))
	if err != nil {
		return nil, err
	}
	if h, err = layers.ConvBNReLU(g, h, k.width, 3, layers.Name("conv2"), layers.Stride(k.stride), layers.Groups(k.groups)); err != nil {
		return nil, err
	}
	if h, err = layers.ConvBN(g, h, k.out, 1, layers.Name("conv3")); err != nil {
		return nil, err
	}
	return b.addReLU(h, x, k)
}

// preBasic is BN-ReLU-conv3x3-BN-ReLU-[dropout]-conv3x3, add.
func (b *builder) preBasic(x *gorgonia.Node, k block) (*gorgonia.Node, error) {
	g := b.g
	pre := x
	var err error
	if !k.skipPreact {
		if pre, err = layers.BNReLU(g, x, layers.Name("bn1")); err != nil {
			return nil, err
		}
	}
	h, err := layers.Conv(g, pre, k.width, 3, layers.Name("conv1"), layers.Stride(k.stride))
	if err != nil {
		return nil, err
	}
	if h, err = layers.BNReLU(g, h, layers.Name("bn2")); err != nil {
		return nil, err
	}
	if h, err = layers.Dropout(g, h, b.drop); err != nil {
		return nil, err
	}
	if h, err = layers.Conv(g, h, k.out, 3, layers.Name("conv2")); err != nil {
		return nil, err
	}
	sc, err := b.shortcutPath(x, pre, k)
	if err != nil {
		return nil, err
	}
	return b.merge(h, sc)
}

// preBottleneck is BN-ReLU-conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1, add.
func (b *builder) preBottleneck(x *gorgonia.Node, k block) (*gorgonia.Node, error) {
	g := b.g
	pre := x
	var err error
	if !k.skipPreact {
		if pre, err = layers.BNReLU(g, x, layers.Name("bn1")); err != nil {
			return nil, err
		}
	}
	h, err := layers.Conv(g, pre, k.width, 1, layers.Name("conv1"))
	if err != nil {
		return nil, err
	}
	if h, err = layers.BNReLU(g, h, layers.Name("bn2")); err != nil {
		return nil, err
	}
	if h, err = layers.Conv(g, h, k.width, 3, layers.Name("conv2"), layers.Stride(k.stride), layers.Groups(k.groups)); err != nil {
		return nil, err
	}
	if h, err = layers.BNReLU(g, h, layers.Name("bn3")); err != nil {
		return nil, err
	}
	if h, err = layers.Conv(g, h, k.out, 1, layers.Name("conv3")); err != nil {
		return nil, err
	}
	sc, err := b.shortcutPath(x, pre, k)
	if err != nil {
		return nil, err
	}
	return b.merge(h, sc)
}
