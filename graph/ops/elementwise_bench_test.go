package ops

import (
	"math/rand/v2"
	"testing"

	"gorgonia.org/tensor"
)

// BenchmarkElementwise times ReLU forward and backward and the residual add
// on ResNet-20's largest activation (batch 128, 16x32x32), float32, with
// their own output buffers and in place.
func BenchmarkElementwise(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 5))
	x := convBenchRandF32(rng, convBenchBatch, 16, 32, 32)
	y := convBenchRandF32(rng, convBenchBatch, 16, 32, 32)
	n := x.Shape().TotalSize()
	for _, inPlace := range []bool{false, true} {
		suffix := ""
		if inPlace {
			suffix = "/inplace"
		}
		relu := &ReLUOp{rank: 4}
		back := &reluBackwardOp{rank: 4}
		add := &AddOp{rank: 4}
		if inPlace {
			relu.SetInPlace(0)
			back.SetInPlace(1)
			add.SetInPlace(1)
		}
		b.Run("ReLU/forward"+suffix, func(b *testing.B) { poolBenchOp(b, relu, 2*n, x.Clone().(*tensor.Dense)) })
		b.Run("ReLU/backward"+suffix, func(b *testing.B) { poolBenchOp(b, back, 3*n, x, y.Clone().(*tensor.Dense)) })
		b.Run("Add"+suffix, func(b *testing.B) { poolBenchOp(b, add, 3*n, x, y.Clone().(*tensor.Dense)) })
	}
}
