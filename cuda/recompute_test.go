package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/erase"
)

// TestRecomputeBNBitIdentical: with batch-norm outputs recomputed in the
// backward pass, three training steps on new batches give bit for bit the
// losses, weights, velocities and running statistics of the step that keeps
// them, in fp32 and bf16, for post- and pre-activation residual nets, a
// wide net with dropout and an MLP; the arena is smaller, and every
// recomputed output's forward buffer ends in the forward pass.
func TestRecomputeBNBitIdentical(t *testing.T) {
	for _, tc := range []struct {
		cfg  arch.Config
		prec Precision
	}{
		{arch.Config{Arch: "resnet-20", Batch: 8}, FP32},
		{arch.Config{Arch: "resnet-20", Batch: 8}, BF16},
		{arch.Config{Arch: "preact-resnet-20", Batch: 8}, FP32},
		{arch.Config{Arch: "wrn-16-1-d", Batch: 8}, FP32},
		{arch.Config{Arch: "mlp-3", Batch: 16}, FP32},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.cfg.Arch, tc.prec), func(t *testing.T) {
			g, p, xs, ys := buildWith(t, tc.cfg, false, erase.Identity)
			var steps [2]*Step
			var refs [2]*Ref
			for i, recompute := range []bool{false, true} {
				s, err := Lower(p, benchSGD, tc.prec)
				if err != nil {
					t.Fatal(err)
				}
				if recompute {
					n := s.RecomputeBN()
					if n == 0 {
						t.Fatal("nothing recomputed")
					}
					t.Logf("%d batch-norm outputs recomputed", n)
				}
				if err := s.Plan(); err != nil {
					t.Fatal(err)
				}
				r := NewRef(s)
				upload(t, g, s, r, xs, ys)
				steps[i], refs[i] = s, r
			}
			keep, re := steps[0], steps[1]
			if re.ArenaBytes >= keep.ArenaBytes {
				t.Errorf("arena %d bytes with recomputation, %d without", re.ArenaBytes, keep.ArenaBytes)
			}
			t.Logf("arena %.2f MiB kept, %.2f MiB recomputed", float64(keep.ArenaBytes)/(1<<20), float64(re.ArenaBytes)/(1<<20))
			bwd := indexOfKernel(re, ceBwd.name)
			recomputed := 0
			for _, in := range re.Instrs[:bwd] {
				if !isBNApply(in.Kernel) {
					continue
				}
				y := re.Bufs[in.Bufs[4]]
				for _, b := range re.Bufs {
					if b.Name == y.Name+"/recomputed" {
						recomputed++
						if y.Last >= bwd || b.First < bwd {
							t.Errorf("%s lives in instructions %d-%d, its recomputation %d-%d; the backward pass starts at %d", y.Name, y.First, y.Last, b.First, b.Last, bwd)
						}
					}
				}
			}
			if recomputed == 0 {
				t.Error("no recomputed buffer found")
			}
			rng := rand.New(rand.NewPCG(7, 8))
			for k := 0; k < 3; k++ {
				bx := make([]float32, len(xs))
				for i := range bx {
					bx[i] = float32(rng.NormFloat64())
				}
				by := make([]int, len(ys))
				for i := range by {
					by[i] = rng.IntN(10)
				}
				for i := range refs {
					if err := refs[i].SetBatch(bx, by); err != nil {
						t.Fatal(err)
					}
					if err := refs[i].Step(0.05, k == 0); err != nil {
						t.Fatal(err)
					}
				}
				if a, b := refs[0].Buf(keep.Metrics)[MetricLoss], refs[1].Buf(re.Metrics)[MetricLoss]; math.Float32bits(a) != math.Float32bits(b) {
					t.Fatalf("step %d: loss %v kept, %v recomputed", k, a, b)
				}
				for id, b := range keep.Bufs {
					if b.Kind != Param && b.Kind != Velocity && b.Kind != State {
						continue
					}
					x, y := refs[0].Buf(id), refs[1].Buf(id)
					for i := range x {
						if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
							t.Fatalf("step %d: %s[%d] %v kept, %v recomputed", k, b.Name, i, x[i], y[i])
						}
					}
				}
			}
		})
	}
}

func indexOfKernel(s *Step, kernel string) int {
	for i, in := range s.Instrs {
		if in.Kernel == kernel {
			return i
		}
	}
	return -1
}

// TestRecomputeBNTrainer: the trainer on the device path with batch-norm
// outputs recomputed (evaluation, checkpoints and all) gives the losses,
// metrics and final weights of the path that keeps them, bit for bit.
func TestRecomputeBNTrainer(t *testing.T) {
	net := arch.Config{Arch: "resnet-8"}
	cfg := tinyConfig(2)
	keep := runTiny(t, net, t.TempDir(), cfg, refBackend, false, nil)
	re := runTiny(t, net, t.TempDir(), cfg, NewBackend(NewRefExecutor, Lowering{Precision: FP32, RecomputeBN: true}), false, nil)
	if keep.err != nil || re.err != nil {
		t.Fatalf("kept: %v, recomputed: %v", keep.err, re.err)
	}
	if fmt.Sprint(keep.losses) != fmt.Sprint(re.losses) {
		t.Errorf("losses: kept %v, recomputed %v", keep.losses, re.losses)
	}
	if fmt.Sprint(strip(keep.res.History)) != fmt.Sprint(strip(re.res.History)) {
		t.Errorf("history: kept %+v, recomputed %+v", keep.res.History, re.res.History)
	}
	for name, w := range keep.params {
		if fmt.Sprint(w) != fmt.Sprint(re.params[name]) {
			t.Errorf("%s differs after training", name)
		}
	}
}
