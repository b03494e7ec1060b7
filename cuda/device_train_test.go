//go:build gpu

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/erase"
)

// The trainer on the device, against the trainer on the reference
// interpreter: what gpu check (one step) and gpu bench (one fixed batch)
// cannot see. A new batch every step, the optimizer's state carried from
// step to step, Load and Sync around checkpoints, the inference step
// sharing the arena. Each test runs with and without CUDA-graph replay.

// TestDeviceTrainerMatchesRef trains the tiny networks of
// TestBackendMatchesCPUTrainer for three epochs through train.Trainer with
// the device backend and with the reference interpreter's: every step's
// loss, every epoch's metrics and the final weights agree within float32
// drift (cuBLAS's summation order compounds over twelve steps), and the
// device run learns (its last loss is below its first).
func TestDeviceTrainerMatchesRef(t *testing.T) {
	for _, net := range tinyNets {
		for _, useGraph := range []bool{false, true} {
			name := fmt.Sprintf("%s/graph=%v", netName(net), useGraph)
			t.Run(name, func(t *testing.T) {
				cfg := tinyConfig(3)
				ref := runTiny(t, net, t.TempDir(), cfg, refBackend, false, nil)
				dev := runTiny(t, net, t.TempDir(), cfg, DeviceBackend(Options{Graph: useGraph}), false, nil)
				if ref.err != nil || dev.err != nil {
					t.Fatalf("reference: %v, device: %v", ref.err, dev.err)
				}
				if len(dev.losses) != len(ref.losses) {
					t.Fatalf("%d device steps, %d reference steps", len(dev.losses), len(ref.losses))
				}
				const tol = 2e-3
				for i := range ref.losses {
					t.Logf("step %2d: loss device %.6f reference %.6f", i, dev.losses[i], ref.losses[i])
					if !near(dev.losses[i], ref.losses[i], tol) {
						t.Errorf("step %d: loss %.7g on the device, %.7g on the reference", i, dev.losses[i], ref.losses[i])
					}
				}
				for e, r := range ref.res.History {
					d := dev.res.History[e]
					t.Logf("epoch %d: device train %.5f test %.5f (%.1f%%), reference train %.5f test %.5f (%.1f%%)",
						e+1, d.Train.Loss, d.Test.Loss, d.Test.Top1Err, r.Train.Loss, r.Test.Loss, r.Test.Top1Err)
					if !near(d.Test.Loss, r.Test.Loss, tol) || !near(d.Train.Loss, r.Train.Loss, tol) {
						t.Errorf("epoch %d: device train %v test %v, reference train %v test %v", e+1, d.Train.Loss, d.Test.Loss, r.Train.Loss, r.Test.Loss)
					}
				}
				for name, want := range ref.params {
					if d := RelDiff(dev.params[name], want); d > 1e-2 || math.IsNaN(d) {
						t.Errorf("%s after training: relative difference %.3g", name, d)
					}
				}
				if n := len(dev.losses); dev.losses[n-1] >= dev.losses[0] {
					t.Errorf("the device run did not learn: loss %.5f at the first step, %.5f at the last", dev.losses[0], dev.losses[n-1])
				}
			})
		}
	}
}

// TestDeviceStepsNewBatches runs the executor itself as the trainer drives
// it: a new batch staged before every step, the optimizer's velocities and
// the weights left on the device from step to step (nothing written over
// them). After every step every parameter, gradient, velocity and
// statistic is read back and compared with the reference interpreter's
// step from the same state (the reference takes the device's values); a
// failure names every buffer more than 1e-2 apart (norm-wise). Two float32
// executions of a deep net differ by up to ~1e-3 in their gradients (gpu
// check measures float32 gradients 2e-3 from float64 on ResNet-20, the
// device's and the CPU's alike), so the bound is for faults, which differ
// by order 1: a lost upload, a stale batch, an update not applied. (It found
// the arena's memset racing the loss-gradient seed's upload: every
// gradient of MLP-12 was 0 on the device.)
func TestDeviceStepsNewBatches(t *testing.T) {
	const steps = 6
	for _, cfg := range []arch.Config{{Arch: "mlp-3", Batch: 32}, {Arch: "mlp-12", Batch: 32}, {Arch: "resnet-8", Batch: 16}} {
		for _, useGraph := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/graph=%v", cfg.Arch, useGraph), func(t *testing.T) {
				g, p, xs, ys := buildWith(t, cfg, false, erase.Identity)
				s, err := Lower(p, benchSGD, FP32)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Plan(); err != nil {
					t.Fatal(err)
				}
				d := openOrSkip(t, s, Options{Graph: useGraph})
				defer d.Close()
				r := NewRef(s)
				uploadBoth(t, g, s, r, d, xs, ys)
				rng := rand.New(rand.NewPCG(5, 6))
				for k := 0; k < steps; k++ {
					bx := make([]float32, len(xs))
					by := make([]int, len(ys))
					for i := range bx {
						bx[i] = float32(rng.NormFloat64())
					}
					for i := range by {
						by[i] = rng.IntN(10)
					}
					if err := d.SetBatch(bx, by); err != nil {
						t.Fatal(err)
					}
					if err := r.SetBatch(bx, by); err != nil {
						t.Fatal(err)
					}
					m, err := d.Step(0.05)
					if err != nil {
						t.Fatal(err)
					}
					if err := r.Step(0.05, k == 0); err != nil {
						t.Fatal(err)
					}
					want := float64(r.Buf(s.Metrics)[MetricLoss])
					var off []string
					worst := 0.0
					for id, b := range s.Bufs {
						if b.Kind != Param && b.Kind != Grad && b.Kind != Velocity && b.Kind != State {
							continue
						}
						got, err := d.Read(id)
						if err != nil {
							t.Fatal(err)
						}
						ref := r.Buf(id)
						diff := RelDiff(got, ref)
						worst = max(worst, diff)
						if diff > 1e-2 || math.IsNaN(diff) {
							bad, first := 0, -1
							for i := range ref {
								if e := math.Abs(float64(got[i] - ref[i])); e > 1e-2*math.Abs(float64(ref[i])) || math.IsNaN(e) {
									bad++
									if first < 0 {
										first = i
									}
								}
							}
							first = max(first, 0)
							off = append(off, fmt.Sprintf("%s: relative difference %.3g, %d of %d values beyond 1e-2 (first [%d]: device %g, reference %g)",
								b.Name, diff, bad, len(ref), first, got[first], ref[first]))
						}
						// The next step starts from the device's state on both:
						// a rounding-level difference (cuBLAS's order) that
						// flips a ReLU would otherwise compound through the
						// chaotic start of random-label training (MLP-12 on the
						// H200: 5e-3 after step 1, 0.16 after step 2).
						copy(ref, got)
					}
					t.Logf("step %d: loss device %.6f reference %.6f; worst buffer relative difference %.3g; %d beyond 1e-2", k, m.Loss, want, worst, len(off))
					if math.Abs(m.Loss-want) > 1e-3*math.Abs(want) || len(off) > 0 {
						t.Fatalf("step %d: the device left the reference (loss %v vs %v); parameters, gradients, velocities or statistics differ:\n%s",
							k, m.Loss, want, strings.Join(off[:min(len(off), 20)], "\n"))
					}
				}
			})
		}
	}
}
