package cuda

import (
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/train"
	"gorgonia.org/tensor"
)

// roundFP16Slow rounds through float64 arithmetic (roundSlow): f's
// significand scaled to half's 11 bits (below half's normal range, 2^-14,
// to multiples of the smallest subnormal 2^-24), rounded half to even,
// scaled back; beyond the largest half, 65504, infinity (an independent
// statement of the rounding RoundFP16 does on the bits).
func roundFP16Slow(f float32) float32 { return roundSlow(f, 11, -13, 65504) }

func TestRoundFP16(t *testing.T) {
	for _, tc := range []struct {
		in   float32
		want uint16
	}{
		{1, 0x3c00},
		{1 + 1.0/2048, 0x3c00},               // tie between 1 and 1+2^-10: even (1)
		{1 + 3.0/2048, 0x3c02},               // tie between 1+2^-10 and 1+2^-9: even
		{1 + 1.0/2048 + 1.0/(1<<20), 0x3c01}, // just above the tie
		{-2, 0xc000},
		{65504, 0x7bff},     // the largest half
		{65519.996, 0x7bff}, // below the midpoint to 65536
		{65520, 0x7c00},     // the midpoint: ties to even, which is infinity
		{-1e6, 0xfc00},      // overflow keeps the sign
		{float32(math.Inf(1)), 0x7c00},
		{math.MaxFloat32, 0x7c00},
		{0x1p-14, 0x0400},     // the smallest normal
		{0x1p-24, 0x0001},     // the smallest subnormal
		{0x1p-25, 0x0000},     // half of it: a tie, to even (zero)
		{0x1.8p-25, 0x0001},   // above the tie
		{0x3p-25, 0x0002},     // 1.5 subnormal quanta: a tie, to even (2)
		{0x1.ff8p-15, 0x03ff}, // the largest subnormal, 1023 quanta of 2^-24
		{0x1.ffcp-15, 0x0400}, // 1023.5 quanta: a tie, to even, which carries into the smallest normal
		{0x1.ff0p-15, 0x03fe}, // 1022 quanta
		{-0x1p-24, 0x8001},
		{0x1p-30, 0},
		{float32(math.Copysign(0, -1)), 0x8000},
		{0, 0},
	} {
		if got := RoundFP16(tc.in); got != tc.want {
			t.Errorf("RoundFP16(%v) = %#04x, want %#04x", tc.in, got, tc.want)
		}
	}
	if h := RoundFP16(float32(math.NaN())); !math.IsNaN(float64(FP16Float(h))) {
		t.Errorf("NaN rounds to %#04x", h)
	}
	// Every half round-trips through its float32 value.
	for h := 0; h < 1<<16; h++ {
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			continue // NaN
		}
		if got := RoundFP16(FP16Float(uint16(h))); got != uint16(h) {
			t.Fatalf("half %#04x: value %g rounds to %#04x", h, FP16Float(uint16(h)), got)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		// Half of them any float32, half with exponents around half's range
		// (2^-30 to 2^17: subnormals, normals, overflow).
		u := rng.Uint32()
		if i%2 == 1 {
			u = u&0x807fffff | uint32(127-30+rng.IntN(48))<<23
		}
		f := math.Float32frombits(u)
		if math.IsNaN(float64(f)) {
			continue
		}
		got, want := FP16Float(RoundFP16(f)), roundFP16Slow(f)
		if got != want && !(got == 0 && want == 0) {
			t.Fatalf("RoundFP16(%g) = %g, want %g", f, got, want)
		}
		if a := math.Abs(float64(f)); a >= 0x1p-14 && a <= 65504 {
			if e := math.Abs(float64(got)-float64(f)) / a; e > 1.0/2048 {
				t.Fatalf("RoundFP16(%g): relative error %g beyond 2^-11", f, e)
			}
		}
	}
}

// TestFP16StepMatchesFloat64: one fp16 training step (loss scale 2^16) on
// the reference interpreter, judged against a float64 CPU step from the
// same weights and data: the loss and running statistics within
// FP16ForwardTol, every gradient (divided by the scale) within
// FP16GradLimit of the CPU float32 step's own distance, and the SGD
// update of the fp32 master weights bit-identical to train.SGD; the
// gradients at least 10 times further from float64 than the float32
// step's (measured over 10,000 times: the GEMMs rounded to half).
func TestFP16StepMatchesFloat64(t *testing.T) {
	halfStepMatchesFloat64(t, FP16, FP16ForwardTol, FP16GradLimit, 10)
}

// TestFP16Plan: every GEMM of an fp16 step reads half operands (and no
// bf16 ones), its columns are half the fp32 step's bytes, and its
// optimizer is the scaled one: the gradient check, sgd_scaled instead of
// sgd, the scaler's update last; ce_bwd reads the scale as its seed.
func TestFP16Plan(t *testing.T) {
	_, p, _, _ := build(t, "resnet-20", 16, false)
	s, err := Lower(p, benchSGD, FP16)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Plan(); err != nil {
		t.Fatal(err)
	}
	if !s.HasScaler() {
		t.Fatal("no loss scaler")
	}
	var kernels []string
	for _, in := range s.Instrs {
		kernels = append(kernels, in.Kernel)
		switch in.Kernel {
		case "gemm":
			for _, id := range in.Bufs[:2] {
				if b := s.Bufs[id]; !b.FP16 || b.BF16 {
					t.Errorf("%v: operand %s is not half", in, b.Name)
				}
			}
		case "im2col", "im2col_bf16", "to_bf16", "sgd":
			t.Errorf("%v in an fp16 step", in)
		case "ce_bwd":
			if in.Bufs[2] != s.Scaler {
				t.Errorf("ce_bwd reads %s as its seed, want the loss scale", s.Bufs[in.Bufs[2]].Name)
			}
		}
	}
	opt := kernels[s.OptStart:]
	if opt[0] != "grad_check" || opt[len(opt)-1] != "loss_scale_update" || len(opt) != 2+len(s.SGDRuns()) {
		t.Errorf("optimizer %v", opt)
	}
	for _, k := range opt[1 : len(opt)-1] {
		if k != "sgd_scaled" {
			t.Errorf("optimizer %v", opt)
		}
	}
	if in := s.Instrs[s.OptStart]; in.Ints[0] != gradElems(s) {
		t.Errorf("grad_check covers %d elements, the gradients are %d", in.Ints[0], gradElems(s))
	}
	// Half GEMM operands make the arena smaller than the fp32 step's; the
	// kept activations stay fp32 (bf16 activation storage is a bf16 step's
	// only), so it is larger than the bf16 step's.
	arena := map[Precision]int64{}
	for _, prec := range []Precision{FP32, BF16} {
		o, err := Lower(p, benchSGD, prec)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Plan(); err != nil {
			t.Fatal(err)
		}
		arena[prec] = o.ArenaBytes
	}
	if s.ArenaBytes >= arena[FP32] || s.ArenaBytes <= arena[BF16] {
		t.Errorf("fp16 arena %d bytes, fp32 %d, bf16 %d: want between them", s.ArenaBytes, arena[FP32], arena[BF16])
	}
}

func gradElems(s *Step) int {
	n := 0
	for _, sl := range s.Params {
		n += s.Bufs[sl.Grad].Elems
	}
	return n
}

// fp16Tiny lowers the tiny ResNet-8 (3x8x8 images, batch 8) in fp16 with
// loss scaler c, and returns its reference interpreter with the graph's
// weights and a batch uploaded.
func fp16Tiny(t *testing.T, c LossScale) (*Step, *Ref) {
	t.Helper()
	p := tinyNet(t, arch.Config{Arch: "resnet-8"})
	g := p.Graph()
	xs, ys := bindBatch(t, g, 8)
	s, _, err := LowerProgram(p, train.SGDOptions{Momentum: 0.9, WeightDecay: 5e-4, Nesterov: true}, Lowering{Precision: FP16, LossScale: c})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRef(s)
	upload(t, g, s, r, xs, ys)
	return s, r
}

// snapshot copies the parameter and velocity regions.
func snapshot(s *Step, r *Ref) (w, v [][]float32) {
	for _, sl := range s.Params {
		w = append(w, append([]float32(nil), r.Buf(sl.Param)...))
		v = append(v, append([]float32(nil), r.Buf(sl.Vel)...))
	}
	return w, v
}

func sameBits(a, b [][]float32) bool {
	for i := range a {
		for j := range a[i] {
			if math.Float32bits(a[i][j]) != math.Float32bits(b[i][j]) {
				return false
			}
		}
	}
	return true
}

// TestLossScaleOverflow: from a scale of 2^40 the loss gradient overflows
// half in the backward pass's GEMM operands. Each such step is skipped
// (parameters and velocities bit-unchanged, the scale halved, the step
// counted, the first update still pending) until the scale is small
// enough; the first step that goes through is bit for bit a fresh step
// at that scale from the same weights (its velocities initialised, as the
// optimizer's first update does).
func TestLossScaleOverflow(t *testing.T) {
	s, r := fp16Tiny(t, LossScale{Init: 0x1p40, Interval: 2000})
	w0, v0 := snapshot(s, r)
	scale, skipped := 0x1p40, 0
	for step := 0; ; step++ {
		if step > 40 {
			t.Fatalf("still skipping after %d steps", step)
		}
		if err := r.Step(0.05, step == 0); err != nil {
			t.Fatal(err)
		}
		st := ReadScaler(r.Buf(s.Scaler))
		w, v := snapshot(s, r)
		if sameBits(w, w0) {
			skipped++
			if !sameBits(v, v0) {
				t.Fatalf("step %d skipped the weights but changed the velocities", step)
			}
			scale /= 2
			if st.Scale != scale || st.Skipped != skipped || !st.Pending || st.Good != 0 {
				t.Fatalf("step %d skipped: scaler %+v, want scale %g, %d skipped, pending", step, st, scale, skipped)
			}
			continue
		}
		if st.Scale != scale || st.Skipped != skipped || st.Pending || st.Good != 1 {
			t.Fatalf("step %d went through: scaler %+v, want scale %g, %d skipped, 1 good", step, st, scale, skipped)
		}
		t.Logf("%d steps skipped, the scale fell from 2^40 to 2^%d", skipped, int(math.Log2(scale)))
		if skipped < 10 {
			t.Fatalf("only %d steps skipped from 2^40", skipped)
		}
		// A fresh step at the scale that went through, from the same
		// weights, with the optimizer's first update.
		fs, fr := fp16Tiny(t, LossScale{Init: scale, Interval: 2000})
		if err := fr.Step(0.05, true); err != nil {
			t.Fatal(err)
		}
		fw, fv := snapshot(fs, fr)
		if !sameBits(w, fw) || !sameBits(v, fv) {
			t.Fatalf("the first update after %d skipped steps differs from a fresh first step at scale %g", skipped, scale)
		}
		return
	}
}

// TestLossScaleGrowth: with a growth interval of 3 the scale doubles after
// every third clean step, and each step is unscaled by the scale it ran
// with: its weight change agrees with that of a run whose scale stays
// 2^10 (not to the bit: gradient operands below half's normal range
// round to multiples of 2^-24 whatever the scale, so they round
// differently at another scale), where an update divided by a stale
// scale would be off by a factor 2.
func TestLossScaleGrowth(t *testing.T) {
	s, r := fp16Tiny(t, LossScale{Init: 1 << 10, Interval: 3})
	fs, fr := fp16Tiny(t, LossScale{Init: 1 << 10, Interval: 1 << 23})
	want := []float64{1 << 10, 1 << 10, 1 << 10, 1 << 11, 1 << 11, 1 << 11, 1 << 12}
	w, _ := snapshot(s, r)
	fw := w
	worst := 0.0
	for step, sc := range want {
		if st := ReadScaler(r.Buf(s.Scaler)); st.Scale != sc || st.Good != step%3 || st.Skipped != 0 {
			t.Fatalf("before step %d: scaler %+v, want scale %g, %d good", step, st, sc, step%3)
		}
		if err := r.Step(0.05, step == 0); err != nil {
			t.Fatal(err)
		}
		if err := fr.Step(0.05, step == 0); err != nil {
			t.Fatal(err)
		}
		w2, _ := snapshot(s, r)
		fw2, _ := snapshot(fs, fr)
		var dw, dfw []float32
		for i := range w2 {
			for j := range w2[i] {
				dw, dfw = append(dw, w2[i][j]-w[i][j]), append(dfw, fw2[i][j]-fw[i][j])
			}
		}
		d := RelDiff(dw, dfw)
		worst = max(worst, d)
		if d > 1e-2 || math.IsNaN(d) {
			t.Fatalf("step %d at scale %g: the weight change differs from the one at 2^10 by %.3g", step, sc, d)
		}
		w, fw = w2, fw2
	}
	t.Logf("weight changes within %.3g of the fixed-scale run's", worst)
}

// TestLossScaleRefusals: a scale that is not a power of two, or an
// interval below 1, is refused; a loss scale on a bf16 step too.
func TestLossScaleRefusals(t *testing.T) {
	p := tinyNet(t, arch.Config{Arch: "mlp-3"})
	for _, c := range []struct {
		prec Precision
		ls   LossScale
	}{{FP16, LossScale{Init: 3}}, {FP16, LossScale{Init: 0x1p-127}}, {FP16, LossScale{Interval: -1}}, {BF16, LossScale{Init: 1024}}} {
		if _, _, err := LowerProgram(p, benchSGD, Lowering{Precision: c.prec, LossScale: c.ls}); err == nil {
			t.Errorf("%s with %+v: no error", c.prec, c.ls)
		}
	}
}

// TestBackendFP16: the trainer on the fp16 device path (the reference
// interpreter) learns as the CPU does (backendHalf: the first step's loss
// within FP16ForwardTol of the CPU's, every step's within 10%, the test
// metrics, the weights differ), and each epoch's log line carries the
// loss scale: 2^16, no step skipped.
func TestBackendFP16(t *testing.T) {
	dir := backendHalf(t, FP16, FP16ForwardTol)
	log, err := os.ReadFile(filepath.Join(dir, train.LogFile))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(log), `"loss_scale":65536,"loss_scale_skipped":0`); n != 3 {
		t.Errorf("%d epoch lines with the loss scale 65536 and no skipped step, want 3:\n%s", n, log)
	}
}

// TestBackendFP16SkippedSteps: through the trainer's backend, steps that
// all overflow leave the weights as loaded and Sync reports the optimizer
// not started (so a checkpoint keeps the first update's velocity
// initialisation pending); Load writes the scaler afresh.
func TestBackendFP16SkippedSteps(t *testing.T) {
	p := tinyNet(t, arch.Config{Arch: "resnet-8"})
	g := p.Graph()
	bindBatch(t, g, 8)
	xn, _ := g.Input("x")
	yn, _ := g.Input("y")
	x, y := xn.Value().(*tensor.Dense), yn.Value().(*tensor.Dense)
	cfg := tinyConfig(1)
	opt, err := train.NewSGD(g.Params(), cfg.SGDOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Close()
	w0 := append([]float32(nil), g.Params()[0].Node.Value().Data().([]float32)...)
	be, err := NewBackend(NewRefExecutor, Lowering{Precision: FP16, LossScale: LossScale{Init: 0x1p100}})(p, cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	b := be.(*Backend)
	if err := b.Load(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := b.Train(x, y, 0.05); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	if opt.Started() {
		t.Error("three skipped steps: Sync says the optimizer started")
	}
	if w := g.Params()[0].Node.Value().Data().([]float32); RelDiff(w, w0) != 0 {
		t.Error("three skipped steps changed the weights")
	}
	v, _ := b.exec.Read(b.train.Scaler)
	if st := ReadScaler(v); st.Skipped != 3 || st.Scale != 0x1p97 || !st.Pending {
		t.Errorf("scaler %+v after three skipped steps", st)
	}
	if err := b.Load(); err != nil {
		t.Fatal(err)
	}
	v, _ = b.exec.Read(b.train.Scaler)
	if st := ReadScaler(v); st.Skipped != 0 || st.Scale != 0x1p100 || st.Pending {
		t.Errorf("scaler %+v after Load", st)
	}
}

// TestBackendFP16ResumeIsExact: an fp16 run whose scaler skips steps and
// changes its scale (from 2^30, doubled after every 2 clean steps) is
// interrupted mid-epoch and at an epoch's end and resumed: the
// checkpoint holds the scaler's state (train.StatefulBackend), so the
// results and weights are the uninterrupted run's bit for bit.
func TestBackendFP16ResumeIsExact(t *testing.T) {
	be := NewBackend(NewRefExecutor, Lowering{Precision: FP16, LossScale: LossScale{Init: 0x1p30, Interval: 2}})
	whole := resumeExactOn(t, tinyNets[0], tinyConfig(3), be)
	t.Logf("losses %.4g", whole.losses)
}

// TestBackendStateRefusals: a checkpoint's loss-scaler state that is not a
// power of two, a count, or a flag is refused naming its key; none (a
// fresh run, a CPU checkpoint) means the initial state.
func TestBackendStateRefusals(t *testing.T) {
	p := tinyNet(t, arch.Config{Arch: "mlp-3"})
	cfg := tinyConfig(1)
	opt, err := train.NewSGD(p.Graph().Params(), cfg.SGDOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Close()
	be, err := NewBackend(NewRefExecutor, Lowering{Precision: FP16})(p, cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	b := be.(*Backend)
	good := map[string]string{scaleKey: "1024", goodKey: "3", skippedKey: "1", pendingKey: "false"}
	for key, bad := range map[string]string{scaleKey: "1000", goodKey: "-1", skippedKey: "x", pendingKey: "maybe"} {
		m := maps.Clone(good)
		m[key] = bad
		if err := b.SetBackendState(m); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s %q: %v", key, bad, err)
		}
	}
	for _, m := range []map[string]string{nil, good} {
		if err := b.SetBackendState(m); err != nil {
			t.Fatal(err)
		}
		if err := b.Load(); err != nil {
			t.Fatal(err)
		}
		st, err := b.BackendState()
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{scaleKey: "65536", goodKey: "0", skippedKey: "0", pendingKey: "false"}
		if m != nil {
			want = good
		}
		if !maps.Equal(st, want) {
			t.Errorf("after SetBackendState(%v) and Load: %v", m, st)
		}
	}
}
