package ops

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// convResNet20Shapes are the distinct convolutions of ResNet-20 for CIFAR (option
// A shortcuts, so no 1x1 projections) with how often each occurs.
var convResNet20Shapes = []struct {
	name          string
	c, hw, f, s   int
	count         int
	needDataGrads bool
}{
	{"conv1_3to16_32x32", 3, 32, 16, 1, 1, false},
	{"stage1_16to16_32x32", 16, 32, 16, 1, 6, true},
	{"stage2down_16to32_s2", 16, 32, 32, 2, 1, true},
	{"stage2_32to32_16x16", 32, 16, 32, 1, 5, true},
	{"stage3down_32to64_s2", 32, 16, 64, 2, 1, true},
	{"stage3_64to64_8x8", 64, 8, 64, 1, 5, true},
}

const convBenchBatch = 128

func convBenchRandF32(rng *rand.Rand, shape ...int) *tensor.Dense {
	n := tensor.Shape(shape).TotalSize()
	v := make([]float32, n)
	for i := range v {
		v[i] = 2*rng.Float32() - 1
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(v))
}

type convBench struct {
	fwd         *Conv2DOp
	data        *conv2DDataGradOp
	filter      *conv2DFilterGradOp
	x, w, dy    *tensor.Dense
	macs        float64
	needDataGrd bool
}

func convNewBench(c, hw, f, s int, needData bool) *convBench {
	rng := rand.New(rand.NewPCG(1, 1))
	p := ConvParams{StrideH: s, StrideW: s, PadH: 1, PadW: 1}.normalized()
	oh := ConvOutputSize(hw, 3, s, 1)
	b := &convBench{
		fwd:    &Conv2DOp{p: p, withBias: withBias{rank: 4}, id: nextID()},
		data:   &conv2DDataGradOp{p: p, xshape: tensor.Shape{convBenchBatch, c, hw, hw}, id: nextID()},
		filter: &conv2DFilterGradOp{p: p, wshape: tensor.Shape{f, c, 3, 3}, id: nextID()},
		x:      convBenchRandF32(rng, convBenchBatch, c, hw, hw),
		w:      convBenchRandF32(rng, f, c, 3, 3),
		dy:     convBenchRandF32(rng, convBenchBatch, f, oh, oh),
	}
	b.macs = float64(convBenchBatch) * float64(f*oh*oh) * float64(c*9)
	b.needDataGrd = needData
	return b
}

// useEnv makes the benchmark's ops run with e.
func (b *convBench) useEnv(e *Env) {
	b.fwd.UseEnv(e)
	b.data.UseEnv(e)
	b.filter.UseEnv(e)
}

func (b *convBench) forward() error {
	_, err := b.fwd.Do(b.x, b.w)
	return err
}

func (b *convBench) backward() error {
	if b.needDataGrd {
		if _, err := b.data.Do(b.w, b.dy); err != nil {
			return err
		}
	}
	_, err := b.filter.Do(b.x, b.dy)
	return err
}

func convReportGFLOPs(b *testing.B, flops float64) {
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkConv2DForward times the forward convolution of each ResNet-20
// shape, float32, batch 128, and the whole set weighted by occurrence.
func BenchmarkConv2DForward(b *testing.B) {
	var all []*convBench
	total := 0.0
	for _, s := range convResNet20Shapes {
		cb := convNewBench(s.c, s.hw, s.f, s.s, s.needDataGrads)
		for i := 0; i < s.count; i++ {
			all = append(all, cb)
			total += cb.macs
		}
		b.Run(s.name, func(b *testing.B) {
			if err := cb.forward(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := cb.forward(); err != nil {
					b.Fatal(err)
				}
			}
			convReportGFLOPs(b, 2*cb.macs)
		})
	}
	b.Run("resnet20_all", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			for _, cb := range all {
				if err := cb.forward(); err != nil {
					b.Fatal(err)
				}
			}
		}
		convReportGFLOPs(b, 2*total)
	})
}

// BenchmarkConv2DBackward times the input and filter gradients (the input
// gradient skipped for the first layer, as in training) of each ResNet-20
// shape, float32, batch 128.
func BenchmarkConv2DBackward(b *testing.B) {
	var all []*convBench
	total := 0.0
	for _, s := range convResNet20Shapes {
		cb := convNewBench(s.c, s.hw, s.f, s.s, s.needDataGrads)
		flops := 2 * cb.macs
		if s.needDataGrads {
			flops *= 2
		}
		for i := 0; i < s.count; i++ {
			all = append(all, cb)
			total += flops
		}
		b.Run(s.name, func(b *testing.B) {
			if err := cb.backward(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := cb.backward(); err != nil {
					b.Fatal(err)
				}
			}
			convReportGFLOPs(b, flops)
		})
	}
	b.Run("resnet20_all", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			for _, cb := range all {
				if err := cb.backward(); err != nil {
					b.Fatal(err)
				}
			}
		}
		convReportGFLOPs(b, total)
	})
}

// BenchmarkConv2DBackwardParts times the two gradient ops separately, and
// for the strided layers the input gradient's fallback (GEMM + col2im,
// DataGradViaForward off) beside the phase kernels (conv_phase.go).
func BenchmarkConv2DBackwardParts(b *testing.B) {
	col2im := DefaultKernels()
	col2im.DataGradViaForward = false
	env, err := NewEnv(col2im)
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range convResNet20Shapes {
		cb := convNewBench(s.c, s.hw, s.f, s.s, s.needDataGrads)
		parts := []string{"data", "filter"}
		if s.s > 1 {
			parts = append(parts, "data-col2im")
		}
		for _, part := range parts {
			b.Run(fmt.Sprintf("%s/%s", s.name, part), func(b *testing.B) {
				do := func() (gorgonia.Value, error) { return cb.filter.Do(cb.x, cb.dy) }
				switch part {
				case "data":
					do = func() (gorgonia.Value, error) { return cb.data.Do(cb.w, cb.dy) }
				case "data-col2im":
					op := &conv2DDataGradOp{p: cb.data.p, xshape: cb.data.xshape, id: nextID(), withEnv: withEnv{env}}
					do = func() (gorgonia.Value, error) { return op.Do(cb.w, cb.dy) }
				}
				if _, err := do(); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := do(); err != nil {
						b.Fatal(err)
					}
				}
				convReportGFLOPs(b, 2*cb.macs)
			})
		}
	}
}
