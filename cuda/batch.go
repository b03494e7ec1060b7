package cuda

import (
	"fmt"
	"math/rand/v2"

	"github.com/eraserelu/eraserelu/graph"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// BindRandomBatch binds a fixed pseudo-random float32 batch to g's inputs
// "x" (standard normal images) and "y" (labels below 10) and returns copies
// of what it bound: the identical data the device checks and the CPU
// reference tests feed both sides.
func BindRandomBatch(g *graph.Graph, batch int) ([]float32, []int, error) {
	xn, ok := g.Input("x")
	if !ok {
		return nil, nil, fmt.Errorf("random batch: the graph has no input x")
	}
	yn, ok := g.Input("y")
	if !ok {
		return nil, nil, fmt.Errorf("random batch: the graph has no input y")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	xs := make([]float32, xn.Shape().TotalSize())
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	ys := make([]int, batch)
	for i := range ys {
		ys[i] = rng.IntN(10)
	}
	if err := gorgonia.Let(xn, tensor.New(tensor.WithShape(xn.Shape()...), tensor.WithBacking(append([]float32(nil), xs...)))); err != nil {
		return nil, nil, fmt.Errorf("random batch: x: %w", err)
	}
	if err := gorgonia.Let(yn, tensor.New(tensor.WithShape(batch), tensor.WithBacking(append([]int(nil), ys...)))); err != nil {
		return nil, nil, fmt.Errorf("random batch: y: %w", err)
	}
	return xs, ys, nil
}
