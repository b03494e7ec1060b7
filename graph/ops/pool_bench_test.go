package ops

import (
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"
)

// poolBenchOp times op.Do on warm buffers and reports elements processed
// (inputs plus outputs) per second.
func poolBenchOp(b *testing.B, op gorgonia.Op, elems int, in ...gorgonia.Value) {
	if _, err := op.Do(in...); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := op.Do(in...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(elems)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
}

// BenchmarkPool times the pooling ops, float32, batch 128: max and average
// pooling on a 32x32 CIFAR-sized map with 64 channels (2x2 stride 2, VGG;
// 3x3 stride 2 pad 1, ResNet's stem) and global average pooling of ResNet-20's
// last map (64 channels, 8x8).
func BenchmarkPool(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 3))
	x := convBenchRandF32(rng, convBenchBatch, 64, 32, 32)
	for _, w := range []struct {
		name    string
		k, s, p int
	}{{"k2s2", 2, 2, 0}, {"k3s2p1", 3, 2, 1}} {
		g, _ := poolGeometry("bench", x.Shape(), w.k, w.s, w.p)
		dy := convBenchRandF32(rng, g.N, g.C, g.OH, g.OW)
		in, out := x.Shape().TotalSize(), dy.Shape().TotalSize()
		k, s, p := w.k, w.s, w.p
		b.Run("MaxPool2D/"+w.name+"/forward", func(b *testing.B) {
			poolBenchOp(b, &MaxPool2DOp{poolOp: poolOp{kernel: k, stride: s, pad: p, id: nextID()}}, in+out, x)
		})
		b.Run("MaxPool2D/"+w.name+"/backward", func(b *testing.B) {
			poolBenchOp(b, &maxPoolGradOp{poolOp: poolOp{kernel: k, stride: s, pad: p, id: nextID()}}, 2*in+out, x, dy)
		})
		b.Run("AvgPool2D/"+w.name+"/forward", func(b *testing.B) {
			poolBenchOp(b, &AvgPool2DOp{poolOp: poolOp{kernel: k, stride: s, pad: p, id: nextID()}}, in+out, x)
		})
		b.Run("AvgPool2D/"+w.name+"/backward", func(b *testing.B) {
			poolBenchOp(b, &avgPoolGradOp{poolOp: poolOp{kernel: k, stride: s, pad: p, id: nextID()}, xshape: x.Shape()}, in+out, dy)
		})
	}
	gx := convBenchRandF32(rng, convBenchBatch, 64, 8, 8)
	gdy := convBenchRandF32(rng, convBenchBatch, 64)
	n := gx.Shape().TotalSize()
	b.Run("GlobalAvgPool/forward", func(b *testing.B) { poolBenchOp(b, &GlobalAvgPoolOp{id: nextID()}, n, gx) })
	b.Run("GlobalAvgPool/backward", func(b *testing.B) {
		poolBenchOp(b, &globalAvgPoolGradOp{h: 8, w: 8, id: nextID()}, n, gdy)
	})
}

// BenchmarkLinear times a 128 x 1024 -> 1024 fully connected layer, float32,
// forward and the three gradients, in GFLOP/s.
func BenchmarkLinear(b *testing.B) {
	rng := rand.New(rand.NewPCG(4, 4))
	const n, in, out = convBenchBatch, 1024, 1024
	x, w, bias, dy := convBenchRandF32(rng, n, in), convBenchRandF32(rng, out, in), convBenchRandF32(rng, out), convBenchRandF32(rng, n, out)
	flops := 2.0 * n * in * out
	for _, c := range []struct {
		name string
		op   gorgonia.Op
		in   []gorgonia.Value
	}{
		{"forward", &LinearOp{withBias: withBias{bias: true, rank: 2}, id: nextID()}, []gorgonia.Value{x, w, bias}},
		{"data", &linearGradOp{kind: linearDataGrad, id: nextID()}, []gorgonia.Value{w, dy}},
		{"weight", &linearGradOp{kind: linearWeightGrad, id: nextID()}, []gorgonia.Value{x, dy}},
	} {
		b.Run(c.name, func(b *testing.B) {
			if _, err := c.op.Do(c.in...); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.op.Do(c.in...); err != nil {
					b.Fatal(err)
				}
			}
			convReportGFLOPs(b, flops)
		})
	}
}
