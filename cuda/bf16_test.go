package cuda

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/erase"
)

// roundBF16Slow rounds through float64 arithmetic: f's significand scaled
// to 8 bits, rounded half to even, scaled back (an independent statement
// of the rounding RoundBF16 does on the bits); below float32's normal
// range bf16 keeps float32's exponent floor.
func roundBF16Slow(f float32) float32 { return roundSlow(f, 8, -125, math.MaxFloat32) }

// roundSlow rounds f to a binary format of the given significant bits
// whose normal numbers start at 2^(minExp-1) (below it the quantum stays
// 2^(minExp-bits): subnormals), half to even, in float64 arithmetic; a
// result beyond maxFinite is infinity.
func roundSlow(f float32, bits, minExp int, maxFinite float64) float32 {
	x := float64(f)
	if x == 0 || math.IsInf(x, 0) || math.IsNaN(x) {
		return f
	}
	frac, exp := math.Frexp(x) // x = frac * 2^exp, 0.5 <= |frac| < 1
	if exp < minExp {
		exp = minExp
		frac = x / math.Ldexp(1, exp)
	}
	v := math.Ldexp(math.RoundToEven(math.Ldexp(frac, bits)), exp-bits)
	if math.Abs(v) > maxFinite {
		return float32(math.Copysign(math.Inf(1), x))
	}
	return float32(v)
}

func TestRoundBF16(t *testing.T) {
	for _, tc := range []struct {
		in   float32
		want uint16
	}{
		{1, 0x3f80},
		{1 + 1.0/256, 0x3f80},             // tie between 1 and 1+2^-7: even (1)
		{1 + 3.0/256, 0x3f82},             // tie between 1+2^-7 and 1+2^-6: even (1+2^-6)
		{1 + 1.0/256 + 1.0/65536, 0x3f81}, // just above the tie
		{-2, 0xc000},
		{float32(math.Inf(1)), 0x7f80},
		{math.MaxFloat32, 0x7f80}, // beyond the largest bf16: infinity
		{0, 0},
	} {
		if got := RoundBF16(tc.in); got != tc.want {
			t.Errorf("RoundBF16(%v) = %#04x, want %#04x", tc.in, got, tc.want)
		}
	}
	if h := RoundBF16(float32(math.NaN())); !math.IsNaN(float64(BF16Float(h))) {
		t.Errorf("NaN rounds to %#04x", h)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		f := math.Float32frombits(rng.Uint32())
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) || math.Abs(float64(f)) > 3e38 {
			continue
		}
		got, want := BF16Float(RoundBF16(f)), roundBF16Slow(f)
		if got != want && !(got == 0 && want == 0) {
			t.Fatalf("RoundBF16(%g) = %g, want %g", f, got, want)
		}
		if e := math.Abs(float64(got)-float64(f)) / math.Abs(float64(f)); f != 0 && math.Abs(float64(f)) > 1e-37 && e > 1.0/256 {
			t.Fatalf("RoundBF16(%g): relative error %g beyond 2^-8", f, e)
		}
	}
}

// halfMeasure runs one bf16 or fp16 step (forward and backward) on the
// reference interpreter and compares it, and the CPU's own float32 step,
// with a float64 step of the same graph from the same weights and data
// (an fp16 step's gradients divided by its loss scale first).
type halfMeasure struct {
	loss, loss32 float64 // relative loss error of the 16-bit and fp32 steps
	grad, grad32 float64 // worst relative gradient error (RelDiff) of each
	stats        float64 // worst running-statistic error of the 16-bit step
	s            *Step
}

func measureHalf(t *testing.T, cfg arch.Config, eraseAll bool, repl erase.Replacement, prec Precision) halfMeasure {
	t.Helper()
	g, p, xs, ys := buildWith(t, cfg, eraseAll, repl)
	tw := buildTwin64(t, cfg, eraseAll, repl, g, xs, ys)
	s, err := Lower(p, benchSGD, prec)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Plan(); err != nil {
		t.Fatal(err)
	}
	t.Log(s.Describe())
	r := NewRef(s)
	upload(t, g, s, r, xs, ys)
	if err := r.Run(0, s.OptStart); err != nil {
		t.Fatal(err)
	}
	if err := p.Train(); err != nil {
		t.Fatal(err)
	}
	if err := tw.p.Train(); err != nil {
		t.Fatal(err)
	}
	m := halfMeasure{s: s}
	scale := gradScale(t, s, r)
	l64 := tw.p.Loss()
	m.loss = math.Abs(float64(r.Buf(s.Loss)[0])-l64) / math.Abs(l64)
	m.loss32 = math.Abs(p.Loss()-l64) / math.Abs(l64)
	for i, sl := range s.Params {
		c32, _ := p.Grad(g.Params()[i])
		c64, _ := tw.p.Grad(tw.g.Params()[i])
		m.grad = max(m.grad, RelDiff(unscaled(r.Buf(sl.Grad), scale), c64.Float64s()))
		m.grad32 = max(m.grad32, RelDiff(c32.Float32s(), c64.Float64s()))
	}
	st64 := map[string][]float64{}
	for _, b := range tw.g.Buffers() {
		st64[b.Name] = b.Value.Float64s()
	}
	for name, id := range s.States {
		m.stats = max(m.stats, RelDiff(r.Buf(id), st64[name]))
	}
	t.Logf("loss %.3g (fp32 %.3g), worst gradient %.3g (fp32 %.3g), running statistics %.3g", m.loss, m.loss32, m.grad, m.grad32, m.stats)
	checkSGD(t, g, p, s, r)
	return m
}

// TestBF16StepMatchesFloat64: one bf16 training step on the reference
// interpreter, judged against a float64 CPU step from the same weights and
// data: the loss and running statistics within BF16ForwardTol, every
// gradient within BF16GradLimit of the CPU float32 step's own distance,
// and the SGD update of the fp32 master weights bit-identical to
// train.SGD. ResNet-20 (im2col_bf16, the packed bf16 weights, bf16 copies
// of dy), its erased form, and MLP-12 (linear layers: bf16 copies of their
// inputs, dropout). The rounding happened: a bf16 step that computed in
// fp32 would be as close to float64 as the float32 one, so its gradients
// must be over 100 times further.
func TestBF16StepMatchesFloat64(t *testing.T) {
	halfStepMatchesFloat64(t, BF16, BF16ForwardTol, BF16GradLimit, 100)
}

// halfStepMatchesFloat64 is TestBF16StepMatchesFloat64 and
// TestFP16StepMatchesFloat64 for precision prec: the forward within
// fwdTol, the gradients within gradLimit(the float32 step's distance) and
// at least minRatio times the float32 step's distance from float64.
func halfStepMatchesFloat64(t *testing.T, prec Precision, fwdTol float64, gradLimit func(float64) float64, minRatio float64) {
	for _, tc := range []struct {
		name  string
		cfg   arch.Config
		erase bool
	}{
		{"resnet-20", arch.Config{Arch: "resnet-20", Batch: 4}, false},
		{"resnet-20-erased", arch.Config{Arch: "resnet-20", Batch: 4}, true},
		{"mlp-12", arch.Config{Arch: "mlp-12", Batch: 8}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() && tc.name != "resnet-20" {
				t.Skip("short")
			}
			m := measureHalf(t, tc.cfg, tc.erase, erase.Identity, prec)
			if m.loss > fwdTol || m.stats > fwdTol || math.IsNaN(m.loss+m.stats) {
				t.Errorf("forward: loss %.3g, running statistics %.3g from float64, want <= %.3g", m.loss, m.stats, fwdTol)
			}
			if lim := gradLimit(m.grad32); m.grad > lim || math.IsNaN(m.grad) {
				t.Errorf("gradients: %.3g from float64, limit %.3g (float32 step %.3g)", m.grad, lim, m.grad32)
			}
			t.Logf("gradient distance %.3g = %.3g x the float32 step's", m.grad, m.grad/m.grad32)
			if m.grad < minRatio*m.grad32 {
				t.Errorf("gradients: %.3g from float64, the float32 step's %.3g: the GEMMs did not round to %s", m.grad, m.grad32, prec)
			}
		})
	}
}

// TestBF16Plan: every GEMM of a bf16 step reads bf16 operands, its im2col
// columns take half the bytes of the fp32 step's, and its arena is smaller
// (only a little: the peak is the stored fp32 activations, docs/CUDA.md).
func TestBF16Plan(t *testing.T) {
	_, p, _, _ := build(t, "resnet-20", 16, false)
	arena, cols := map[Precision]int64{}, map[Precision]int64{}
	for _, prec := range []Precision{FP32, BF16} {
		s, err := Lower(p, benchSGD, prec)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Plan(); err != nil {
			t.Fatal(err)
		}
		arena[prec] = s.ArenaBytes
		gemms, half := 0, 0
		for _, in := range s.Instrs {
			switch in.Kernel {
			case "gemm":
				gemms++
				if s.Bufs[in.Bufs[0]].BF16 && s.Bufs[in.Bufs[1]].BF16 {
					half++
				}
			case "im2col", "im2col_bf16":
				cols[prec] += s.Bufs[in.Bufs[1]].Bytes()
			}
		}
		want := 0
		if prec == BF16 {
			want = gemms
		}
		if half != want {
			t.Errorf("%s: %d of %d GEMMs on bf16 operands, want %d", prec, half, gemms, want)
		}
	}
	t.Logf("arena fp32 %.1f MiB, bf16 %.1f MiB", float64(arena[FP32])/(1<<20), float64(arena[BF16])/(1<<20))
	if cols[BF16]*2 != cols[FP32] || cols[FP32] == 0 {
		t.Errorf("im2col columns: bf16 %d bytes, fp32 %d: want half", cols[BF16], cols[FP32])
	}
	if arena[BF16] >= arena[FP32] {
		t.Errorf("bf16 arena %d bytes, fp32 %d: want smaller", arena[BF16], arena[FP32])
	}
}

// TestBackendBF16: the trainer on the bf16 device path (the reference
// interpreter): training and evaluation (the bf16 inference step) run; the
// first step, from the CPU's weights, has the CPU's loss within
// BF16ForwardTol, later steps drift no more than bf16 rounding amplified
// by training allows (10%), and the weights read back differ from the
// CPU's (the GEMMs rounded; small parameters such as batch-norm shifts
// differ relatively much after 12 steps, so only the losses are bounded).
func TestBackendBF16(t *testing.T) { backendHalf(t, BF16, BF16ForwardTol) }

// backendHalf trains the tiny ResNet-8 three epochs through the trainer
// on the CPU and on the prec device path (the reference interpreter) and
// holds the second to the first: the first step's loss within fwdTol,
// every step's within 10%, the test metrics, weights that differ. It
// returns the device run's directory.
func backendHalf(t *testing.T, prec Precision, fwdTol float64) string {
	net := tinyNets[0]
	cfg := tinyConfig(3)
	cpu := runTiny(t, net, t.TempDir(), cfg, nil, false, nil)
	dir := t.TempDir()
	dev := runTiny(t, net, dir, cfg, NewBackend(NewRefExecutor, Lowering{Precision: prec}), false, nil)
	if cpu.err != nil || dev.err != nil {
		t.Fatalf("cpu: %v, device: %v", cpu.err, dev.err)
	}
	if len(dev.losses) != len(cpu.losses) || len(dev.losses) == 0 {
		t.Fatalf("%d and %d steps", len(cpu.losses), len(dev.losses))
	}
	if !near(dev.losses[0], cpu.losses[0], fwdTol) {
		t.Errorf("first step: loss %.7g in %s, %.7g on the CPU", dev.losses[0], prec, cpu.losses[0])
	}
	for i := range cpu.losses {
		if !near(dev.losses[i], cpu.losses[i], 0.1) || math.IsNaN(dev.losses[i]) {
			t.Errorf("step %d: loss %.7g in %s, %.7g on the CPU", i, dev.losses[i], prec, cpu.losses[i])
		}
	}
	last := len(cpu.res.History) - 1
	if d, c := dev.res.History[last].Test, cpu.res.History[last].Test; d.Examples != c.Examples || !near(d.Loss, c.Loss, 0.1) {
		t.Errorf("test metrics: %s %+v, CPU %+v", prec, d, c)
	}
	if first, lastLoss := dev.losses[0], dev.losses[len(dev.losses)-1]; !(lastLoss < first) {
		t.Errorf("%s training did not lower the loss: %.4g -> %.4g", prec, first, lastLoss)
	}
	worst := 0.0
	for name, w := range cpu.params {
		worst = max(worst, RelDiff(dev.params[name], w))
	}
	t.Logf("losses %s %.5g, CPU %.5g; worst weight difference %.3g", prec, dev.losses, cpu.losses, worst)
	if worst == 0 {
		t.Errorf("weights after training equal the CPU's: the %s path did not round", prec)
	}
	return dir
}
