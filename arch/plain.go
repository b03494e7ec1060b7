package arch

import (
	"fmt"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/layers"
	"gorgonia.org/gorgonia"
)

// stem3x3 is a 3x3 convolution, BN and ReLU in the scope "stem".
func (b *builder) stem3x3(x *gorgonia.Node, width int) (*gorgonia.Node, error) {
	var h *gorgonia.Node
	err := b.g.Within("stem", func() error {
		var err error
		h, err = layers.ConvBNReLU(b.g, x, width, 3, layers.Name("conv"))
		return err
	})
	return h, err
}

// fig3 builds the networks of Figure 3(a, b, d) (section 3.2): a 3x3 conv
// with 16 filters, then three stages of m modules with 16, 32 and 64
// channels, each module with exactly one ReLU, at its end; the first module
// of stages 2 and 3 downsamples with stride 2. VGG-style modules are
// conv-BN-ReLU; residual-style modules are ReLU(shortcut(x) + BN(conv(x)))
// with a parameter-free option-A shortcut, so both nets have 3m+1 weighted
// layers (the classifier aside, as the paper counts).
func (b *builder) fig3(x *gorgonia.Node) (*gorgonia.Node, error) {
	g := b.g
	m := (b.spec.Depth - 1) / 3
	b.blocks = 3 * m
	h, err := b.stem3x3(x, 16)
	if err != nil {
		return nil, err
	}
	in := 16
	for i, out := range []int{16, 32, 64} {
		err := g.Within(fmt.Sprintf("stage%d", i+1), func() error {
			for j := 0; j < m; j++ {
				stride := 1
				if i > 0 && j == 0 {
					stride = 2
				}
				k := Block{In: in, Out: out, Stride: stride, Shortcut: ZeroPad}
				name := fmt.Sprintf("block%d", j+1)
				var err error
				if b.spec.Family == Fig3VGG {
					h, err = g.Build(name, graph.Plain, func() (*gorgonia.Node, error) {
						return layers.ConvBNReLU(g, h, out, 3, layers.Name("conv"), layers.Stride(stride))
					})
				} else {
					k.Survival = b.survival()
					h, err = g.Build(name, graph.Residual, func() (*gorgonia.Node, error) {
						return Fig3ResModule(g, h, k)
					})
				}
				if err != nil {
					return err
				}
				in = out
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return b.head(h, false)
}

// mlp builds the MNIST MLP of Figure 3(c): d-1 modules of FC 1000 (no
// bias: BN follows), BN, ReLU and dropout, then FC to the classes. The
// module's output is its dropout; the ReLU the erase pass removes is the
// node just before it.
func (b *builder) mlp(x *gorgonia.Node) (*gorgonia.Node, error) {
	g := b.g
	h := x
	for i := 1; i < b.spec.Depth; i++ {
		var err error
		h, err = g.Build(fmt.Sprintf("layer%d", i), graph.MLP, func() (*gorgonia.Node, error) {
			return MLPLayer(g, h, 1000, b.drop)
		})
		if err != nil {
			return nil, err
		}
	}
	var out *gorgonia.Node
	err := g.Within("head", func() error {
		var err error
		out, err = layers.Dense(g, h, b.cfg.Classes, layers.Name("fc"))
		return err
	})
	return out, err
}

// scalar builds the f: R -> R network of Figure 4 (section 3.3): a
// fully-connected input layer to 200 units, N residual modules
// ReLU(h + LayerNorm(FC(h))) (the residual-style module of Figure 2 with
// conv and BN replaced by FC and LayerNorm), and a fully-connected output
// layer to one unit. Weights and biases are He-initialised, N(0, 2/fan_in).
func (b *builder) scalar() error {
	g, dt, n := b.g, b.cfg.Dtype, b.cfg.Batch
	x := g.NewInput("x", dt, n, 1)
	y := g.NewInput("y", dt, n, 1)
	var h *gorgonia.Node
	err := g.Within("input", func() error {
		var err error
		h, err = heDense(g, x, 200)
		return err
	})
	if err != nil {
		return err
	}
	for i := 1; i <= b.spec.Depth; i++ {
		h, err = g.Build(fmt.Sprintf("block%d", i), graph.Residual, func() (*gorgonia.Node, error) {
			return ScalarModule(g, h)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", b.spec.Name, err)
		}
	}
	var yHat *gorgonia.Node
	if err := g.Within("output", func() error {
		var err error
		yHat, err = heDense(g, h, 1)
		return err
	}); err != nil {
		return err
	}
	diff, err := gorgonia.Sub(yHat, y)
	if err != nil {
		return err
	}
	sq, err := gorgonia.Square(diff)
	if err != nil {
		return err
	}
	loss, err := gorgonia.Mean(sq)
	if err != nil {
		return err
	}
	g.SetOutput("y_hat", yHat)
	g.SetOutput("loss", loss)
	return nil
}

// inception builds Inception-V2 for CIFAR (section 4.2): a 3x3 conv with
// 64 channels (BN, ReLU), then three stages of m/3 inception modules with
// base widths b = 16, 32, 64 and a 3x3/2 max pool between stages. A module
// concatenates four branches, each ending in BN and ReLU, with output
// channels b : 8b : 2b : b (1 : 8 : 2 : 1):
//
//	1x1 conv b
//	1x1 conv b, 3x3 conv 8b
//	1x1 conv b, 3x3 conv 2b, 3x3 conv 2b (the "5x5" as two 3x3)
//	3x3 avg pool (stride 1), 1x1 conv b
//
// See docs/architectures.md for why.
func (b *builder) inception(x *gorgonia.Node) (*gorgonia.Node, error) {
	g := b.g
	m := b.spec.Depth / 3
	h, err := b.stem3x3(x, 64)
	if err != nil {
		return nil, err
	}
	for i, base := range []int{16, 32, 64} {
		err := g.Within(fmt.Sprintf("stage%d", i+1), func() error {
			var err error
			if i > 0 {
				if h, err = layers.MaxPool(h, 3, 2, 1); err != nil {
					return err
				}
			}
			for j := 0; j < m; j++ {
				h, err = g.Build(fmt.Sprintf("block%d", j+1), graph.Inception, func() (*gorgonia.Node, error) {
					return InceptionModule(g, h, base)
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return b.head(h, false)
}
