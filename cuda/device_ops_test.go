//go:build gpu

package cuda

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/graph"
)

// The device checks of the kernels: the random ops, layer norm, bf16 (-tags gpu; on a GPU
// machine: go test -c -tags gpu,purego ./cuda, then cuda.test -test.run
// TestDevice). Skipped where no device opens.

func openOrSkip(t *testing.T, s *Step, opt Options) *Device {
	t.Helper()
	d, err := Open(s, opt)
	if err != nil {
		if strings.Contains(err.Error(), "cuInit") || strings.Contains(err.Error(), "cuDeviceGet") {
			t.Skipf("no device: %v", err)
		}
		if strings.Contains(err.Error(), "needs bf16 tensor cores") {
			t.Skipf("bf16 case on a GPU without bf16 tensor cores: %v", err)
		}
		t.Fatal(err)
	}
	return d
}

// uploadBoth writes the graph's parameters, statistics, the batch and the
// RNG counters into the reference and the device.
func uploadBoth(t *testing.T, g *graph.Graph, s *Step, r *Ref, d *Device, xs []float32, ys []int) {
	t.Helper()
	upload(t, g, s, r, xs, ys)
	for id, b := range s.Bufs {
		if b.Kind == Param || b.Kind == State || (b.Kind == Hyper && id == s.RNG) {
			if err := d.Write(id, r.Buf(id)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := d.SetBatch(xs, ys); err != nil {
		t.Fatal(err)
	}
}

// TestDeviceKernels runs every instruction of a forward and backward pass
// on the device from the reference's inputs (copied over first, so that
// cuBLAS's rounding does not propagate) and compares what it writes: the
// random-op and layer-norm kernels and every bf16 output (a rounding of
// float32 values both compute alike) bit for bit, the others within 1e-4.
func TestDeviceKernels(t *testing.T) {
	for _, tc := range deviceCases {
		t.Run(tc.name, func(t *testing.T) {
			g, p, xs, ys := tc.build(t)
			s, err := lower(p, benchSGD, tc.lowering(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Plan(); err != nil {
				t.Fatal(err)
			}
			d := openOrSkip(t, s, Options{Lowering: tc.lowering()})
			defer d.Close()
			r := NewRef(s)
			uploadBoth(t, g, s, r, d, xs, ys)
			checked := map[string]int{}
			for i, in := range s.Instrs[:s.OptStart] {
				for _, id := range in.Bufs {
					if s.Bufs[id].Kind != Param {
						if err := d.Write(id, r.Buf(id)); err != nil {
							t.Fatal(err)
						}
					}
				}
				if err := d.RunRange(i, i+1); err != nil {
					t.Fatal(err)
				}
				if err := r.Run(i, i+1); err != nil {
					t.Fatal(err)
				}
				for _, w := range in.Writes {
					got, err := d.Read(w)
					if err != nil {
						t.Fatal(err)
					}
					want := r.Buf(w)
					if b := s.Bufs[w]; b.BF16 {
						g, wv := halves(got)[:b.Elems], halves(want)[:b.Elems]
						for j := range wv {
							if g[j] != wv[j] {
								t.Fatalf("instruction %d %v: %s[%d] (bf16) device %#04x, reference %#04x", i, in, b.Name, j, g[j], wv[j])
							}
						}
						checked[in.Kernel]++
					} else if bitExact[in.Kernel] {
						for j := range want {
							if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
								t.Fatalf("instruction %d %v: %s[%d] device %v (%08x), reference %v (%08x)", i, in, s.Bufs[w].Name, j,
									got[j], math.Float32bits(got[j]), want[j], math.Float32bits(want[j]))
							}
						}
						checked[in.Kernel]++
					} else if s.Bufs[w].Double {
						if diff := RelDiff(float64s(got), float64s(want)); diff > 1e-4 || math.IsNaN(diff) {
							t.Errorf("instruction %d %v: %s (float64) relative difference %.3g", i, in, s.Bufs[w].Name, diff)
						}
					} else if !s.Bufs[w].Int {
						if diff := RelDiff(got, want); diff > 1e-4 || math.IsNaN(diff) {
							t.Errorf("instruction %d %v: %s relative difference %.3g", i, in, s.Bufs[w].Name, diff)
						}
					}
				}
			}
			t.Logf("%d instructions; bit-exact: %v", s.OptStart, checked)
		})
	}
}

// TestDeviceGraphSteps runs training steps as one replayed CUDA graph and
// on the reference interpreter, from the same weights at every step (the
// reference's are written over the device's before each step, so that
// cuBLAS's rounding does not compound): the counters advance once per step
// on the device (the captured graph reads and advances the device buffer),
// and each step's loss, which depends on that step's masks, agrees.
func TestDeviceGraphSteps(t *testing.T) {
	const steps = 4
	for _, tc := range deviceCases {
		t.Run(tc.name, func(t *testing.T) {
			g, p, xs, ys := tc.build(t)
			s, err := lower(p, benchSGD, tc.lowering(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Plan(); err != nil {
				t.Fatal(err)
			}
			d := openOrSkip(t, s, Options{Graph: true, Lowering: tc.lowering()})
			defer d.Close()
			r := NewRef(s)
			uploadBoth(t, g, s, r, d, xs, ys)
			start := make([]float32, len(r.Buf(s.RNG)))
			copy(start, r.Buf(s.RNG))
			for k := 0; k < steps; k++ {
				for _, sl := range s.Params {
					if err := d.Write(sl.Param, r.Buf(sl.Param)); err != nil {
						t.Fatal(err)
					}
				}
				m, err := d.Step(0.01)
				if err != nil {
					t.Fatal(err)
				}
				if err := r.Step(0.01, k == 0); err != nil {
					t.Fatal(err)
				}
				want := r.Buf(s.Metrics)
				t.Logf("step %d: loss device %.6f reference %.6f, top-1 %d/%v", k, m.Loss, want[MetricLoss], m.Top1, want[MetricTop1])
				if d := math.Abs(m.Loss-float64(want[MetricLoss])) / math.Abs(float64(want[MetricLoss])); d > graphLossTol(tc.precision()) || math.IsNaN(d) {
					t.Errorf("step %d: loss device %v, reference %v", k, m.Loss, want[MetricLoss])
				}
				ctr, err := d.Read(s.RNG)
				if err != nil {
					t.Fatal(err)
				}
				for i := range s.Randoms {
					if got, want := getU64(ctr, i), getU64(start, i)+uint64(k+1); got != want || getU64(r.Buf(s.RNG), i) != want {
						t.Fatalf("step %d: counter %d: device %d, reference %d, want %d", k, i, got, getU64(r.Buf(s.RNG), i), want)
					}
				}
			}
			fmt.Printf("%s: %d graph steps, %d counters advanced in step\n", tc.name, steps, len(s.Randoms))
		})
	}
}

// graphLossTol is how far a replayed step's loss may be from the
// reference's: float32 summation orders (1e-5); in bf16 a stored value
// whose float32 form lies within that rounding of a bf16 rounding boundary
// rounds the other way, moving that element by 2^-8 relative, so 1e-4.
func graphLossTol(p Precision) float64 {
	if p == BF16 {
		return 1e-4
	}
	return 1e-5
}
