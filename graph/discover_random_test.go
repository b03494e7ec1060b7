package graph_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"github.com/eraserelu/eraserelu/layers"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// randomNet builds, with the builder's annotations, a random network of
// residual blocks (after- or pre-activation, identity or projection
// shortcut, one to three layers, batch norm or not, dropout inside or
// not), plain units and concatenation modules, written with the library's
// ops or Gorgonia's own Add and Rectify: convolutional (after a stem that
// is not a module) or fully connected.
func randomNet(t *testing.T, seed uint64) *graph.Graph {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	g := graph.New(tensor.Float64, seed)
	conv := rng.IntN(2) == 0
	var h *gorgonia.Node
	if conv {
		h = g.NewInput("x", tensor.Float64, 2, 3, 6, 6)
	} else {
		h = g.NewInput("x", tensor.Float64, 2, 5)
	}
	y := g.NewInput("y", tensor.Int, 2)
	width := func(n *gorgonia.Node) int { return n.Shape()[1] }
	gorgoniaOps := rng.IntN(2) == 0
	relu := func(n *gorgonia.Node) (*gorgonia.Node, error) {
		if gorgoniaOps {
			return gorgonia.Rectify(n)
		}
		return ops.ReLU(n)
	}
	add := func(a, b *gorgonia.Node) (*gorgonia.Node, error) {
		if gorgoniaOps {
			return gorgonia.Add(a, b)
		}
		return ops.Add(a, b)
	}
	// layer is a weighted layer of w outputs, [normalised].
	layer := func(x *gorgonia.Node, w int, norm bool) (*gorgonia.Node, error) {
		var err error
		if conv {
			if x, err = layers.Conv(g, x, w, 1+2*rng.IntN(2)); err != nil || !norm {
				return x, err
			}
			return layers.BatchNorm(g, x)
		}
		if x, err = layers.Dense(g, x, w); err != nil || !norm {
			return x, err
		}
		if rng.IntN(2) == 0 {
			return layers.LayerNorm(g, x)
		}
		return layers.BatchNorm(g, x)
	}
	unit := func(x *gorgonia.Node, w int) (*gorgonia.Node, error) {
		x, err := layer(x, w, rng.IntN(3) > 0)
		if err != nil {
			return nil, err
		}
		return relu(x)
	}
	dropout := func(x *gorgonia.Node) (*gorgonia.Node, error) {
		if rng.IntN(4) == 0 {
			return layers.Dropout(g, x, 0.2)
		}
		return x, nil
	}
	if conv {
		if err := g.Within("stem", func() error {
			var err error
			h, err = unit(h, 4)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	blocks := 1 + rng.IntN(7)
	for i := 0; i < blocks; i++ {
		var err error
		name := fmt.Sprintf("m%d", i)
		switch k := rng.IntN(4); {
		case k <= 1: // residual
			pre := k == 1
			h, err = g.Build(name, graph.Residual, func() (*gorgonia.Node, error) {
				in, x := h, h
				if pre {
					bn, err := layers.BatchNorm(g, h)
					if err != nil {
						return nil, err
					}
					if in, err = relu(bn); err != nil {
						return nil, err
					}
					x = in
				}
				w := width(h)
				project := rng.IntN(3) == 0
				if project {
					w += 1 + rng.IntN(3)
				}
				r := in
				n := 1 + rng.IntN(3)
				for j := 0; j < n; j++ {
					last := j == n-1
					if r, err = layer(r, w, !(pre && last) && rng.IntN(4) > 0); err != nil {
						return nil, err
					}
					if !last {
						if r, err = relu(r); err != nil {
							return nil, err
						}
						if r, err = dropout(r); err != nil {
							return nil, err
						}
					}
				}
				sc := h
				if project {
					if !pre {
						x = h
					}
					if sc, err = layer(x, w, !pre); err != nil {
						return nil, err
					}
				}
				sum, err := add(sc, r)
				if err != nil || pre {
					return sum, err
				}
				return relu(sum)
			})
		case k == 2: // plain unit
			kind := graph.MLP
			if conv {
				kind = graph.Plain
			}
			h, err = g.Build(name, kind, func() (*gorgonia.Node, error) {
				r, err := unit(h, 2+rng.IntN(4))
				if err != nil {
					return nil, err
				}
				return dropout(r)
			})
		default: // concatenation of two or three branches
			h, err = g.Build(name, graph.Inception, func() (*gorgonia.Node, error) {
				var branches []*gorgonia.Node
				for b := 0; b < 2+rng.IntN(2); b++ {
					r := h
					for j := 0; j < 1+rng.IntN(2); j++ {
						if r, err = unit(r, 1+rng.IntN(3)); err != nil {
							return nil, err
						}
					}
					branches = append(branches, r)
				}
				return ops.Concat(branches...)
			})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if conv {
		var err error
		if h, err = ops.GlobalAvgPool(h); err != nil {
			t.Fatal(err)
		}
	}
	logits, err := layers.Dense(g, h, 3, layers.Name("head"))
	if err != nil {
		t.Fatal(err)
	}
	loss, _, err := ops.SoftmaxCrossEntropy(logits, y)
	if err != nil {
		t.Fatal(err)
	}
	g.SetOutput("loss", loss)
	return g
}

// TestDiscoverRandomNetworks: discovery finds the modules the builder
// recorded on random residual, sequential and concatenating networks, and
// erasing half of them through discovery removes the same nodes.
func TestDiscoverRandomNetworks(t *testing.T) {
	for seed := uint64(1); seed <= 300; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			g := randomNet(t, seed)
			sameModules(t, g)
			s := stripped(t, g)
			if _, err := graph.DiscoverModules(s); err != nil {
				t.Fatal(err)
			}
			// Only modules with a trailing ReLU can lose it.
			var erasable []*graph.Module
			for _, m := range g.Leaves() {
				if _, err := erase.Locate(m, erase.Last); err == nil {
					erasable = append(erasable, m)
				}
			}
			if len(erasable) == 0 {
				return
			}
			kinds := []graph.Kind{erasable[0].Kind}
			_, a, errA := erase.Apply(g, erase.Options{Proportion: 0.5, Kinds: kinds})
			_, b, errB := erase.Apply(s, erase.Options{Proportion: 0.5, Kinds: kinds})
			if (errA == nil) != (errB == nil) {
				t.Fatalf("erase: annotated %v, discovered %v", errA, errB)
			}
			if errA == nil && (a.ReLUsAfter != b.ReLUsAfter || len(a.Erased) != len(b.Erased)) {
				t.Fatalf("erase: annotated %d modules, ReLUs %d -> %d; discovered %d, %d -> %d",
					len(a.Erased), a.ReLUsBefore, a.ReLUsAfter, len(b.Erased), b.ReLUsBefore, b.ReLUsAfter)
			}
		})
	}
}
