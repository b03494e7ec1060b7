package arch

import (
	"fmt"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/layers"
	"gorgonia.org/gorgonia"
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
	shortcut     Shortcut
	stages       []stage
}

// residualConfig maps a spec to the residual constructor's configuration.
func (b *builder) residualConfig() (resnet, error) {
	s := b.spec
	r := resnet{bottleneck: s.Bottleneck, groups: 1, preact: s.PreActivation(), after: b.cfg.AfterActivation}
	cifar := func(blocks, stem int, widths, outs []int, sc Shortcut) {
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
		sc := ZeroPad
		if s.Bottleneck {
			// He 2016b: projection shortcuts for bottleneck nets; the
			// original (after-activation) ResNet-164 with BN, as in
			// fb.resnet.torch, the pre-activation one a bare conv.
			sc = ProjectionBN
			if s.Family == PreActResNet {
				sc = Projection
			}
			n := (s.Depth - 2) / 9
			cifar(n, 16, []int{16, 32, 64}, []int{64, 128, 256}, sc)
		} else {
			n := (s.Depth - 2) / 6
			cifar(n, 16, []int{16, 32, 64}, []int{16, 32, 64}, sc)
		}
	case WideResNet:
		n, k := (s.Depth-4)/6, s.Width
		cifar(n, 16, []int{16 * k, 32 * k, 64 * k}, []int{16 * k, 32 * k, 64 * k}, Projection)
	case ResNeXt:
		// Xie et al. 2017, CIFAR: 64-channel stem, 3 stages of (d-2)/9
		// blocks, outputs 256/512/1024, inner width C*w doubled per stage.
		n, cw := (s.Depth-2)/9, s.Cardinality*s.GroupWidth
		r.groups = s.Cardinality
		cifar(n, 64, []int{cw, 2 * cw, 4 * cw}, []int{256, 512, 1024}, ProjectionBN)
	case ImageNetResNet, ImageNetPreAct, ImageNetResNeXt:
		r.imagenetStem, r.stemWidth = true, 64
		r.shortcut = ProjectionBN
		if s.Family == ImageNetPreAct {
			r.shortcut = Projection
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
			h, err = layers.MaxPool(h, 3, 2, 1)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	block := BasicBlock
	switch {
	case r.preact && !r.after && r.bottleneck:
		block = PreActBottleneck
	case r.preact && !r.after:
		block = PreActBlock
	case r.bottleneck:
		block = Bottleneck
	}
	in := r.stemWidth
	for i, st := range r.stages {
		err := g.Within(fmt.Sprintf("stage%d", i+1), func() error {
			for j := 0; j < st.blocks; j++ {
				stride := 1
				if j == 0 {
					stride = st.stride
				}
				k := Block{In: in, Width: st.width, Out: st.out, Stride: stride, Groups: r.groups, Shortcut: r.shortcut,
					Dropout: b.drop, Survival: b.survival(), Preactivated: preactStem && i == 0 && j == 0}
				var err error
				h, err = g.Build(fmt.Sprintf("block%d", j+1), graph.Residual, func() (*gorgonia.Node, error) {
					return block(g, h, k)
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
		if h, err = layers.GlobalAvgPool(h); err != nil {
			return err
		}
		out, err = layers.Dense(g, h, b.cfg.Classes, layers.Name("fc"))
		return err
	})
	return out, err
}

// survival is the next residual block's stochastic-depth survival
// probability (Block.Survival), decaying linearly from 1 to 0.5 at the
// last block; 0 without stochastic depth.
func (b *builder) survival() float64 {
	b.block++
	if !b.cfg.StochasticDepth {
		return 0
	}
	return 1 - float64(b.block)/float64(b.blocks)*0.5
}
