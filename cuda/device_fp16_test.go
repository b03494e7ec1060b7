//go:build gpu

package cuda

import (
	"math"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
)

// The device checks of the fp16 step (-tags gpu; run with the other
// TestDevice* tests: cd cuda && ../bin/gpu/cuda.test -test.run TestDevice).
// Its rounding kernels and its loss scaler are integer or explicitly
// rounded arithmetic, so the device must match the interpreter bit for bit
// (bitExact).

// fp16Cases: ResNet-20 has every kernel of an fp16 step (im2col_fp16 and
// the half copies of dy, of the linear layer's input and of the weights).
var fp16Cases = []deviceCase{
	{"resnet-20", func(t *testing.T) (*graph.Graph, *graph.Program, []float32, []int) {
		return buildWith(t, arch.Config{Arch: "resnet-20", Batch: 16}, false, erase.Identity)
	}, Lowering{Precision: FP16}},
}

// lowerFP16 lowers and plans an fp16 step with loss scaler c.
func lowerFP16(t *testing.T, p *graph.Program, c LossScale) *Step {
	t.Helper()
	s, err := Lower(p, benchSGD, FP16)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetLossScale(c); err != nil {
		t.Fatal(err)
	}
	if err := s.Plan(); err != nil {
		t.Fatal(err)
	}
	return s
}

// writeOptimizerState copies the reference's gradients, velocities, hyper
// parameters and scaler to the device (the optimizer's kernels read runs
// that span several buffers, of which compareKernels writes only the first).
func writeOptimizerState(t *testing.T, s *Step, r *Ref, d *Device) {
	t.Helper()
	ids := []int{s.Hyper, s.Scaler}
	for _, sl := range s.Params {
		ids = append(ids, sl.Param, sl.Grad, sl.Vel)
	}
	for _, id := range ids {
		if err := d.Write(id, r.Buf(id)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDeviceKernelsFP16: every instruction of a whole fp16 training step
// (forward, backward with the loss scale 2^16, the gradient check, the
// scaled SGD and the scaler's update) on the device from the reference's
// inputs: to_fp16, im2col_fp16 and the scaler's kernels bit for bit, the
// GEMMs on half operands and every other kernel within 1e-4. Then the
// optimizer of an overflowed step (scale 2^40: infinite gradients) from
// the reference's state: skipped on both, the scaler halved, bit for bit.
func TestDeviceKernelsFP16(t *testing.T) {
	for _, tc := range fp16Cases {
		t.Run(tc.name, func(t *testing.T) {
			g, p, xs, ys := tc.build(t)
			s := lowerFP16(t, p, DefaultLossScale)
			d := openOrSkip(t, s, Options{Lowering: Lowering{Precision: FP16}})
			defer d.Close()
			r := NewRef(s)
			uploadBoth(t, g, s, r, d, xs, ys)
			h := r.Buf(s.Hyper)
			h[HyperLR], h[HyperFirst] = 0.05, 1
			checked := compareKernels(t, s, r, d, 0, s.OptStart)
			writeOptimizerState(t, s, r, d)
			for k, n := range compareKernels(t, s, r, d, s.OptStart, len(s.Instrs)) {
				checked[k] += n
			}
			for _, k := range []string{"to_fp16", "grad_check", "sgd_scaled", "loss_scale_update"} {
				if checked[k] == 0 {
					t.Errorf("no %s checked", k)
				}
			}
			if st := ReadScaler(r.Buf(s.Scaler)); st.Skipped != 0 || st.Good != 1 {
				t.Errorf("the step at 2^16 was skipped: %+v", st)
			}
			t.Logf("%d instructions; bit-exact: %v", len(s.Instrs), checked)

			// Overflow: the reference runs the backward pass at 2^40, the
			// device runs the optimizer from its state.
			so := lowerFP16(t, p, LossScale{Init: 0x1p40})
			do := openOrSkip(t, so, Options{Lowering: Lowering{Precision: FP16}})
			defer do.Close()
			ro := NewRef(so)
			upload(t, g, so, ro, xs, ys)
			h = ro.Buf(so.Hyper)
			h[HyperLR], h[HyperFirst] = 0.05, 1
			if err := ro.Run(0, so.OptStart); err != nil {
				t.Fatal(err)
			}
			writeOptimizerState(t, so, ro, do)
			compareKernels(t, so, ro, do, so.OptStart, len(so.Instrs))
			if st := ReadScaler(ro.Buf(so.Scaler)); st.Skipped != 1 || st.Scale != 0x1p39 || !st.Pending {
				t.Errorf("the step at 2^40 was not skipped: %+v", st)
			}
		})
	}
}

// TestDeviceGraphStepsFP16: fp16 training steps as one replayed CUDA graph
// against Ref.Step (the tiny ResNet-8), from the same weights at every
// step, with the scaler left to the device: starting at 2^30 the first
// steps overflow and are
// skipped, then the scale doubles after every 2 clean steps; after each
// step the device's scaler (scale, counters, flags) equals the
// reference's bit for bit, and the losses agree within 1e-3 (half
// roundings of activations that differ in the last fp32 bit may differ).
func TestDeviceGraphStepsFP16(t *testing.T) {
	const steps = 24
	p := tinyNet(t, arch.Config{Arch: "resnet-8"})
	g := p.Graph()
	xs, ys := bindBatch(t, g, 8)
	s := lowerFP16(t, p, LossScale{Init: 0x1p30, Interval: 2})
	d := openOrSkip(t, s, Options{Graph: true, Lowering: Lowering{Precision: FP16}})
	defer d.Close()
	r := NewRef(s)
	uploadBoth(t, g, s, r, d, xs, ys)
	skipped := 0
	for k := 0; k < steps; k++ {
		stepBoth(t, s, r, d, k, 0.01, 1e-3)
		got, err := d.Read(s.Scaler)
		if err != nil {
			t.Fatal(err)
		}
		ref := r.Buf(s.Scaler)
		for i := range ref {
			if math.Float32bits(got[i]) != math.Float32bits(ref[i]) {
				t.Fatalf("step %d: scaler device %+v, reference %+v", k, ReadScaler(got), ReadScaler(ref))
			}
		}
		skipped = ReadScaler(ref).Skipped
	}
	st := ReadScaler(r.Buf(s.Scaler))
	t.Logf("%d graph steps: %d skipped, final scale %g", steps, skipped, st.Scale)
	if skipped == 0 || skipped == steps {
		t.Errorf("%d of %d steps skipped: want the first ones only", skipped, steps)
	}
}
