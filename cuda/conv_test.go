package cuda

import (
	"math/rand/v2"
	"testing"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestConvGeometries checks single convolutions (grouped, strided, 1x1,
// tiny planes) through Lower and Ref against graph.Program: x -> conv ->
// global average pool -> cross-entropy.
func TestConvGeometries(t *testing.T) {
	for _, tc := range []struct {
		name          string
		n, c, h, f, k int
		p             ops.ConvParams
	}{
		{"3x3", 2, 8, 5, 8, 3, ops.ConvParams{PadH: 1, PadW: 1}},
		{"3x3-s2", 2, 8, 4, 8, 3, ops.ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}},
		{"3x3-g4", 2, 8, 5, 8, 3, ops.ConvParams{PadH: 1, PadW: 1, Groups: 4}},
		{"3x3-g4-s2", 2, 8, 4, 8, 3, ops.ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, Groups: 4}},
		{"3x3-g4-2x2", 3, 8, 2, 8, 3, ops.ConvParams{PadH: 1, PadW: 1, Groups: 4}},
		{"1x1", 2, 8, 3, 6, 1, ops.ConvParams{}},
		{"1x1-s2", 2, 8, 4, 6, 1, ops.ConvParams{StrideH: 2, StrideW: 2}},
		{"7x7-s2", 2, 3, 9, 4, 7, ops.ConvParams{StrideH: 2, StrideW: 2, PadH: 3, PadW: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := graph.New(tensor.Float32, 1)
			x := g.NewInput("x", tensor.Float32, tc.n, tc.c, tc.h, tc.h)
			y := g.NewInput("y", tensor.Int, tc.n)
			groups := max(tc.p.Groups, 1)
			w := g.NewParam("w", []int{tc.f, tc.c / groups, tc.k, tc.k}, graph.HeNormal(), false)
			b := g.NewParam("b", []int{tc.f}, graph.Constant(0.1), true)
			alpha := g.NewParam("alpha", []int{tc.c}, graph.Constant(0.25), true)
			xa, err := ops.PReLU(x, alpha) // so that the input gradient of the convolution is needed
			if err != nil {
				t.Fatal(err)
			}
			z, err := ops.Conv2D(xa, w, b, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			pooled, err := ops.GlobalAvgPool(z)
			if err != nil {
				t.Fatal(err)
			}
			loss, _, err := ops.SoftmaxCrossEntropy(pooled, y)
			if err != nil {
				t.Fatal(err)
			}
			g.SetOutput("logits", pooled)
			g.SetOutput("loss", loss)
			p, err := graph.Compile(g, "loss", graph.WithInputGradients())
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(5, 6))
			xs := make([]float32, tc.n*tc.c*tc.h*tc.h)
			for i := range xs {
				xs[i] = float32(rng.NormFloat64())
			}
			ys := make([]int, tc.n)
			for i := range ys {
				ys[i] = rng.IntN(tc.f)
			}
			gorgonia.Let(x, tensor.New(tensor.WithShape(x.Shape()...), tensor.WithBacking(append([]float32(nil), xs...))))
			gorgonia.Let(y, tensor.New(tensor.WithShape(tc.n), tensor.WithBacking(append([]int(nil), ys...))))
			s, err := Lower(p, benchSGD, FP32)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Plan(); err != nil {
				t.Fatal(err)
			}
			r := NewRef(s)
			upload(t, g, s, r, xs, ys)
			if err := p.Train(); err != nil {
				t.Fatal(err)
			}
			if err := r.Run(0, s.OptStart); err != nil {
				t.Fatal(err)
			}
			for i, sl := range s.Params {
				want, _ := p.Grad(g.Params()[i])
				if d := RelDiff(r.Buf(sl.Grad), want.Float32s()); d > 1e-5 {
					t.Errorf("gradient of %s: relative difference %.3g\nref %v\ncpu %v", sl.Name, d, r.Buf(sl.Grad), want.Float32s())
				}
			}
		})
	}
}
