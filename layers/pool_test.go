package layers_test

import (
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/layers"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestPoolingAndMerges: the pooling and merging layers give the shapes of
// their PyTorch namesakes, and reject inputs of the wrong rank.
func TestPoolingAndMerges(t *testing.T) {
	g, x := newGraph() // (2, 4, 8, 8)
	shape := func(name string, n *gorgonia.Node, err error, want tensor.Shape) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !n.Shape().Eq(want) {
			t.Errorf("%s: shape %v, want %v", name, n.Shape(), want)
		}
	}
	n, err := layers.MaxPool(x, 3, 2, 1)
	shape("MaxPool(3, 2, 1)", n, err, tensor.Shape{2, 4, 4, 4})
	n, err = layers.AvgPool(x, 3, 1, 1)
	shape("AvgPool(3, 1, 1)", n, err, tensor.Shape{2, 4, 8, 8})
	n, err = layers.AvgPool(x, 2, 2, 0)
	shape("AvgPool(2, 2, 0)", n, err, tensor.Shape{2, 4, 4, 4})
	n, err = layers.GlobalAvgPool(x)
	shape("GlobalAvgPool", n, err, tensor.Shape{2, 4})
	n, err = layers.Add(x, x)
	shape("Add", n, err, tensor.Shape{2, 4, 8, 8})
	n, err = layers.Concat(x, x)
	shape("Concat", n, err, tensor.Shape{2, 8, 8, 8})
	n, err = layers.ZeroPadShortcut(x, 8, 2)
	shape("ZeroPadShortcut(8, 2)", n, err, tensor.Shape{2, 8, 4, 4})
	pooled, _ := layers.GlobalAvgPool(x)
	y := g.NewInput("y", tensor.Int, 2)
	n, err = layers.SoftmaxCrossEntropy(pooled, y)
	shape("SoftmaxCrossEntropy", n, err, tensor.ScalarShape())

	flat := g.NewInput("flat", tensor.Float64, 2, 4)
	for name, build := range map[string]func() (*gorgonia.Node, error){
		"MaxPool":       func() (*gorgonia.Node, error) { return layers.MaxPool(flat, 2, 2, 0) },
		"AvgPool":       func() (*gorgonia.Node, error) { return layers.AvgPool(flat, 2, 2, 0) },
		"GlobalAvgPool": func() (*gorgonia.Node, error) { return layers.GlobalAvgPool(flat) },
	} {
		if _, err := build(); err == nil {
			t.Errorf("%s of a (2, 4) input: no error", name)
		}
	}
	if _, err := layers.SoftmaxCrossEntropy(x, y); err == nil || !strings.Contains(err.Error(), "want (N, K)") {
		t.Errorf("cross-entropy of 4-D logits: %v", err)
	}
}

// TestStochasticDepthDrawsOneSeed: the layer takes its seed from the
// graph's random stream, exactly one draw (the parameters created after it
// depend on that), and rejects a survival probability outside (0, 1].
func TestStochasticDepthDrawsOneSeed(t *testing.T) {
	g, x := newGraph()
	h := graph.New(tensor.Float64, 7)
	h.Rand().Uint64()
	if _, err := layers.StochasticDepth(g, x, 0.8); err != nil {
		t.Fatal(err)
	}
	if a, b := g.Rand().Uint64(), h.Rand().Uint64(); a != b {
		t.Errorf("after the layer the graph's stream gives %d, after one draw %d", a, b)
	}
	for _, p := range []float64{0, -0.5, 1.5} {
		if _, err := layers.StochasticDepth(g, x, p); err == nil {
			t.Errorf("survival %g: no error", p)
		}
	}
}
