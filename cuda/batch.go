package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/eraserelu/eraserelu/graph"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// This file holds what the device checks (cuda/devcheck) and the reference
// tests share: the data both sides of a comparison are fed, the float64
// twin they are judged against, and the measure of a difference.

// WriteWeights writes g's parameters and batch-norm running statistics
// (float32) into their buffers of s through write (a Device's, an
// Executor's or a Ref's Write).
func WriteWeights(s *Step, g *graph.Graph, write func(id int, v []float32) error) error {
	for i, sl := range s.Params {
		w, err := float32s(g.Params()[i].Node.Value())
		if err != nil {
			return fmt.Errorf("parameter %s: %w", sl.Name, err)
		}
		if err := write(sl.Param, w); err != nil {
			return err
		}
	}
	for _, buf := range g.Buffers() {
		if id, ok := s.States[buf.Name]; ok {
			if err := write(id, buf.Value.Float32s()); err != nil {
				return err
			}
		}
	}
	return nil
}

// BindBatch binds images xs (converted to the graph's dtype) and labels ys
// to g's inputs "x" and "y", as copies.
func BindBatch(g *graph.Graph, xs []float32, ys []int) error {
	xn, ok := g.Input("x")
	if !ok {
		return fmt.Errorf("bind batch: the graph has no input x")
	}
	yn, ok := g.Input("y")
	if !ok {
		return fmt.Errorf("bind batch: the graph has no input y")
	}
	var x *tensor.Dense
	if xn.Dtype() == tensor.Float64 {
		v := make([]float64, len(xs))
		for i, f := range xs {
			v[i] = float64(f)
		}
		x = tensor.New(tensor.WithShape(xn.Shape()...), tensor.WithBacking(v))
	} else {
		x = tensor.New(tensor.WithShape(xn.Shape()...), tensor.WithBacking(append([]float32(nil), xs...)))
	}
	if err := gorgonia.Let(xn, x); err != nil {
		return fmt.Errorf("bind batch: x: %w", err)
	}
	if err := gorgonia.Let(yn, tensor.New(tensor.WithShape(len(ys)), tensor.WithBacking(append([]int(nil), ys...)))); err != nil {
		return fmt.Errorf("bind batch: y: %w", err)
	}
	return nil
}

// BindRandomBatch binds a fixed pseudo-random float32 batch to g's inputs
// "x" (standard normal images) and "y" (labels below 10) and returns what
// it bound: the identical data the device checks and the CPU reference
// tests feed both sides.
func BindRandomBatch(g *graph.Graph, batch int) ([]float32, []int, error) {
	xn, ok := g.Input("x")
	if !ok {
		return nil, nil, fmt.Errorf("random batch: the graph has no input x")
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
	return xs, ys, BindBatch(g, xs, ys)
}

// CopyWeights64 copies the parameters and running statistics of src, a
// float32 graph, into dst, the float64 build of the same architecture: the
// reference a float32 step is measured against.
func CopyWeights64(dst, src *graph.Graph) error {
	if len(dst.Params()) != len(src.Params()) {
		return fmt.Errorf("copy weights: %d parameters into %d", len(src.Params()), len(dst.Params()))
	}
	for i, p := range dst.Params() {
		to := p.Node.Value().Data().([]float64)
		from := src.Params()[i].Node.Value().Data().([]float32)
		if len(to) != len(from) {
			return fmt.Errorf("copy weights: parameter %s has %d values, %s %d", src.Params()[i].Name, len(from), p.Name, len(to))
		}
		for j, v := range from {
			to[j] = float64(v)
		}
	}
	from := map[string][]float32{}
	for _, b := range src.Buffers() {
		from[b.Name] = b.Value.Float32s()
	}
	for _, b := range dst.Buffers() {
		to := b.Value.Float64s()
		for j, v := range from[b.Name] {
			to[j] = float64(v)
		}
	}
	return nil
}

// RelDiff is |a-b| / |b| (|a-b| where b is zero) over whole vectors, in
// float64: how every check compares a result with its reference.
func RelDiff[A, B float32 | float64](a []A, b []B) float64 {
	var num, den float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}
