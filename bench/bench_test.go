package bench

import (
	"testing"
	"time"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/tensor"
)

// benchStep times one training (or inference) step of arch at batch 128 and
// reports img/s besides ns/op.
func benchStep(b *testing.B, archName string, batch int, eval bool) {
	s, err := NewSession(Config{Arch: archName, Batch: batch, Dtype: tensor.Float32})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	step := s.TrainStep
	if eval {
		step = s.EvalStep
	}
	// warm: buffers are allocated on the first run
	if err := s.TrainStep(); err != nil {
		b.Fatal(err)
	}
	if err := step(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), CPUTime()
	for i := 0; i < b.N; i++ {
		if err := step(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "img/s")
	// CPU time is steadier than wall time on a shared machine.
	b.ReportMetric(float64((CPUTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
}

func BenchmarkResNet20Train(b *testing.B)  { benchStep(b, "resnet-20", 128, false) }
func BenchmarkResNet20Eval(b *testing.B)   { benchStep(b, "resnet-20", 128, true) }
func BenchmarkResNet56Train(b *testing.B)  { benchStep(b, "resnet-56", 128, false) }
func BenchmarkResNet56Eval(b *testing.B)   { benchStep(b, "resnet-56", 128, true) }
func BenchmarkResNet110Train(b *testing.B) { benchStep(b, "resnet-110", 128, false) }
func BenchmarkResNet110Eval(b *testing.B)  { benchStep(b, "resnet-110", 128, true) }
func BenchmarkMLP12Train(b *testing.B)     { benchStep(b, "mlp-12", 128, false) }
func BenchmarkMLP12Eval(b *testing.B)      { benchStep(b, "mlp-12", 128, true) }

// BenchmarkTrainingFusion times training steps with the training fusion
// (ops.Kernels.TrainingFusion) on and off, alternating step by step in one
// process so that the load of the moment hits both alike, and reports the
// wall and CPU milliseconds per step of each and their ratio (fused over
// unfused, below 1 when the fusion pays).
func BenchmarkTrainingFusion(b *testing.B) {
	off := ops.DefaultKernels()
	off.TrainingFusion = false
	benchAlternating(b, off, ops.DefaultKernels())
}

// BenchmarkConvBatchStats is BenchmarkTrainingFusion for the batch
// statistics the convolutions collect (ops.Kernels.ConvBatchStats) alone:
// the rest of the training fusion on in both.
func BenchmarkConvBatchStats(b *testing.B) {
	off := ops.DefaultKernels()
	off.ConvBatchStats = false
	benchAlternating(b, off, ops.DefaultKernels())
}

// benchAlternating times ResNet-20 and -110 training steps with the
// kernels off and on, alternating step by step in one process, and reports
// the wall and CPU milliseconds per step of each and their ratio (on over
// off, named fused and unfused).
func benchAlternating(b *testing.B, off, on ops.Kernels) {
	for _, a := range []string{"resnet-20", "resnet-110"} {
		b.Run(a, func(b *testing.B) {
			var ss [2]*Session
			for k, kern := range []ops.Kernels{off, on} {
				s, err := NewSession(Config{Arch: a, Batch: 128, Dtype: tensor.Float32, Kernels: &kern})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				if err := s.TrainStep(); err != nil {
					b.Fatal(err)
				}
				ss[k] = s
			}
			var wall, cpuT [2]time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for k, s := range ss {
					t0, c0 := time.Now(), CPUTime()
					if err := s.TrainStep(); err != nil {
						b.Fatal(err)
					}
					wall[k] += time.Since(t0)
					cpuT[k] += CPUTime() - c0
				}
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
			b.ReportMetric(ms(wall[1]), "fused-ms/step")
			b.ReportMetric(ms(wall[0]), "unfused-ms/step")
			b.ReportMetric(ms(cpuT[1]), "fused-cpu-ms/step")
			b.ReportMetric(ms(cpuT[0]), "unfused-cpu-ms/step")
			b.ReportMetric(float64(wall[1])/float64(wall[0]), "fused/unfused")
		})
	}
}

// BenchmarkEraseResNet1202 times the erase pass (all ReLUs of the residual
// blocks) on ResNet-1202; the goal is under 100 ms.
func BenchmarkEraseResNet1202(b *testing.B) {
	g, err := arch.Build(arch.Config{Arch: "resnet-1202", Batch: 128, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := erase.Apply(g, erase.Options{Proportion: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildCompileResNet1202 times building and compiling ResNet-1202
// (both machines); the goal is under 2 s.
func BenchmarkBuildCompileResNet1202(b *testing.B) {
	for i := 0; i < b.N; i++ {
		g, err := arch.Build(arch.Config{Arch: "resnet-1202", Batch: 128, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		p, err := graph.Compile(g, "loss")
		if err != nil {
			b.Fatal(err)
		}
		p.Close()
	}
}
