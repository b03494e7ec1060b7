package cuda

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/tensor"
)

// roundBF16Slow rounds through float64 arithmetic: f's significand scaled
// to 8 bits, rounded half to even, scaled back (an independent statement
// of the rounding RoundBF16 does on the bits).
func roundBF16Slow(f float32) float32 {
	x := float64(f)
	if x == 0 || math.IsInf(x, 0) || math.IsNaN(x) {
		return f
	}
	frac, exp := math.Frexp(x) // x = frac * 2^exp, 0.5 <= |frac| < 1
	if exp < -125 {            // below float32's normal range: bf16 keeps the same exponent floor
		exp = -125
		frac = x / math.Ldexp(1, exp)
	}
	r := math.RoundToEven(math.Ldexp(frac, 8))
	return float32(math.Ldexp(r, exp-8))
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

// bf16Measure runs one bf16 step (forward and backward) on the reference
// interpreter and compares it, and the CPU's own float32 step, with a
// float64 step of the same graph from the same weights and data.
type bf16Measure struct {
	loss, loss32 float64 // relative loss error of the bf16 and fp32 steps
	grad, grad32 float64 // worst relative gradient error (RelDiff) of each
	stats        float64 // worst running-statistic error of the bf16 step
	s            *Step
}

func measureBF16(t *testing.T, g *graph.Graph, p *graph.Program, xs []float32, ys []int, tw *twin64) bf16Measure {
	t.Helper()
	s, err := Lower(p, benchSGD, BF16)
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
	m := bf16Measure{s: s}
	l64 := tw.p.Loss()
	m.loss = math.Abs(float64(r.Buf(s.Loss)[0])-l64) / math.Abs(l64)
	m.loss32 = math.Abs(p.Loss()-l64) / math.Abs(l64)
	for i, sl := range s.Params {
		c32, _ := p.Grad(g.Params()[i])
		c64, _ := tw.p.Grad(tw.g.Params()[i])
		m.grad = max(m.grad, RelDiff(r.Buf(sl.Grad), c64.Float64s()))
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
// inputs, dropout).
func TestBF16StepMatchesFloat64(t *testing.T) {
	fromArch := func(cfg arch.Config, eraseAll bool) func(t *testing.T) (*graph.Graph, *graph.Program, []float32, []int, *twin64) {
		return func(t *testing.T) (*graph.Graph, *graph.Program, []float32, []int, *twin64) {
			g, p, xs, ys := buildWith(t, cfg, eraseAll, erase.Identity)
			return g, p, xs, ys, buildTwin64(t, cfg, eraseAll, erase.Identity, g, xs, ys)
		}
	}
	for _, tc := range []struct {
		name  string
		build func(t *testing.T) (*graph.Graph, *graph.Program, []float32, []int, *twin64)
	}{
		{"resnet-20", fromArch(arch.Config{Arch: "resnet-20", Batch: 4}, false)},
		{"resnet-20-erased", fromArch(arch.Config{Arch: "resnet-20", Batch: 4}, true)},
		{"preact-resnet-20", fromArch(arch.Config{Arch: "preact-resnet-20", Batch: 4}, false)},
		{"mlp-12", fromArch(arch.Config{Arch: "mlp-12", Batch: 8}, false)},
		{"bf16-probe", func(t *testing.T) (*graph.Graph, *graph.Program, []float32, []int, *twin64) {
			g, p := bf16Probe(t, tensor.Float32, 4)
			xs, ys := bindBatch(t, g, 4)
			g64, p64 := bf16Probe(t, tensor.Float64, 4)
			if err := CopyWeights64(g64, g); err != nil {
				t.Fatal(err)
			}
			if err := BindBatch(g64, xs, ys); err != nil {
				t.Fatal(err)
			}
			return g, p, xs, ys, &twin64{g: g64, p: p64}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() && tc.name != "resnet-20" {
				t.Skip("short")
			}
			g, p, xs, ys, tw := tc.build(t)
			m := measureBF16(t, g, p, xs, ys, tw)
			if m.loss > BF16ForwardTol || m.stats > BF16ForwardTol || math.IsNaN(m.loss+m.stats) {
				t.Errorf("forward: loss %.3g, running statistics %.3g from float64, want <= %.3g", m.loss, m.stats, BF16ForwardTol)
			}
			if lim := BF16GradLimit(m.grad32); m.grad > lim || math.IsNaN(m.grad) {
				t.Errorf("gradients: %.3g from float64, limit %.3g (float32 step %.3g)", m.grad, lim, m.grad32)
			}
			// The rounding happened: a bf16 step that computed in fp32
			// would be as close to float64 as the float32 one.
			if m.grad < 100*m.grad32 {
				t.Errorf("gradients: %.3g from float64, the float32 step's %.3g: the GEMMs did not round to bf16", m.grad, m.grad32)
			}
		})
	}
}

// TestBF16Plan: every GEMM of a bf16 step reads bf16 operands and writes
// fp32, its im2col columns take half the bytes of the fp32 step's, the
// activations kept for the backward pass are bf16 where their readers take
// bf16 (every convolution output and every block output of ResNet-20, the
// batch-norm outputs that convolutions read), the gradients are fp32, every
// bf16 buffer is written by a rounding kernel, and the arena shrinks.
func TestBF16Plan(t *testing.T) {
	g, p, _, _ := build(t, "resnet-20", 16, false)
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
			case "im2col", "im2col_bf16", "im2col_bf16_bf16":
				cols[prec] += s.Bufs[in.Bufs[1]].Bytes()
			}
			for _, w := range in.Writes {
				rounds := in.Kernel == toBF16.name || in.Kernel == im2colBF16.name || bf16Kernels[in.Kernel]
				if s.Bufs[w].BF16 && !rounds {
					t.Errorf("%s: bf16 buffer %s written by %s, not a rounding kernel", prec, s.Bufs[w].Name, in.Kernel)
				}
			}
		}
		want := 0
		if prec == BF16 {
			want = gemms
		}
		if half != want {
			t.Errorf("%s: %d of %d GEMMs on bf16 operands, want %d", prec, half, gemms, want)
		}
		for _, sl := range s.Params {
			if s.Bufs[sl.Grad].BF16 || s.Bufs[sl.Param].BF16 || s.Bufs[sl.Vel].BF16 {
				t.Errorf("%s: parameter %s has a bf16 master, gradient or velocity", prec, sl.Name)
			}
		}
		stored := map[ops.Kind][2]int64{} // forward outputs kept: bf16 bytes, fp32 bytes
		for _, n := range g.Expr().AllNodes() {
			id, ok := s.NodeBufs[n]
			if !ok || n.Op() == nil {
				continue
			}
			k, b := ops.Describe(n.Op()).Kind, s.Bufs[id]
			if k != ops.KindConv2D && k != ops.KindBatchNorm && k != ops.KindAdd {
				continue
			}
			v := stored[k]
			if b.BF16 {
				v[0] += b.Bytes()
			} else {
				v[1] += b.Bytes()
			}
			stored[k] = v
			if prec == FP32 && b.BF16 {
				t.Errorf("fp32 step: %s is bf16", b.Name)
			}
			if prec == BF16 && k == ops.KindConv2D && !b.BF16 {
				t.Errorf("bf16 step: convolution output %s is fp32", b.Name)
			}
		}
		t.Logf("%s: bytes kept in bf16 / fp32: convolution %v, batch norm %v, add %v", prec, stored[ops.KindConv2D], stored[ops.KindBatchNorm], stored[ops.KindAdd])
		if prec == BF16 {
			// The forward adds are the nine block outputs (the gradient sums,
			// adds too, are fp32): three blocks in each stage, 16 images of
			// 16 x 32², 32 x 16², 64 x 8².
			if got, want := stored[ops.KindAdd][0], int64(3*16*(16*32*32+32*16*16+64*8*8)*BF16Bytes); got != want {
				t.Errorf("bf16 block outputs: %d bytes, want %d", got, want)
			}
			if stored[ops.KindBatchNorm][0] == 0 {
				t.Error("no batch-norm output stored in bf16")
			}
		}
	}
	t.Logf("arena fp32 %.1f MiB, bf16 %.1f MiB", float64(arena[FP32])/(1<<20), float64(arena[BF16])/(1<<20))
	if cols[BF16]*2 != cols[FP32] || cols[FP32] == 0 {
		t.Errorf("im2col columns: bf16 %d bytes, fp32 %d: want half", cols[BF16], cols[FP32])
	}
	if arena[BF16] > arena[FP32]*3/4 {
		t.Errorf("bf16 arena %d bytes, fp32 %d: want at most 3/4", arena[BF16], arena[FP32])
	}
}

// pyTorchAMPPeakResNet1202 is PyTorch's peak allocated memory training
// ResNet-1202 at batch 128 with AMP bf16 and channels-last, measured on
// the H200 on 2026-12-04 (docs/gpu-runs/2026-12-04/call3-big.log): the
// yardstick of issue 13's memory goal (our arena at most 0.8 times it).
const pyTorchAMPPeakResNet1202 = 5871 << 20

// TestBF16PlannedArenas plans the training step at batch 128 (as
// eraserelu arch show --device-arena 128 does, no GPU needed): the bf16
// arena is at most 3/4 of the fp32 one with and without --recompute-bn,
// and for ResNet-1202 with --recompute-bn at most 0.8 times PyTorch AMP's
// measured peak. These are planned figures, not device measurements.
func TestBF16PlannedArenas(t *testing.T) {
	for _, name := range []string{"resnet-20", "resnet-110", "resnet-1202"} {
		t.Run(name, func(t *testing.T) {
			if testing.Short() && name == "resnet-1202" {
				t.Skip("short")
			}
			_, p, _, _ := build(t, name, 128, false)
			mib := func(b int64) float64 { return float64(b) / (1 << 20) }
			for _, re := range []bool{false, true} {
				arena := map[Precision]int64{}
				for _, prec := range []Precision{FP32, BF16} {
					s, _, err := LowerProgram(p, benchSGD, Lowering{Precision: prec, RecomputeBN: re})
					if err != nil {
						t.Fatal(err)
					}
					arena[prec] = s.ArenaBytes
				}
				t.Logf("recompute-bn %v: planned arena fp32 %.0f MiB, bf16 %.0f MiB (%.2fx)", re, mib(arena[FP32]), mib(arena[BF16]), float64(arena[BF16])/float64(arena[FP32]))
				if arena[BF16] > arena[FP32]*3/4 {
					t.Errorf("recompute-bn %v: bf16 arena %.0f MiB, fp32 %.0f MiB: want at most 3/4", re, mib(arena[BF16]), mib(arena[FP32]))
				}
				if name == "resnet-1202" && re && float64(arena[BF16]) > 0.8*pyTorchAMPPeakResNet1202 {
					t.Errorf("bf16 --recompute-bn arena %.0f MiB, over 0.8x PyTorch AMP's %d MiB", mib(arena[BF16]), pyTorchAMPPeakResNet1202>>20)
				}
			}
		})
	}
}

// TestBackendBF16: the trainer on the bf16 device path (the reference
// interpreter): training and evaluation (the bf16 inference step) run; the
// first step, from the CPU's weights, has the CPU's loss within
// BF16ForwardTol, later steps drift no more than bf16 rounding amplified
// by training allows (10%), and the weights read back differ from the
// CPU's (the GEMMs rounded; small parameters such as batch-norm shifts
// differ relatively much after 12 steps, so only the losses are bounded).
func TestBackendBF16(t *testing.T) {
	net := tinyNets[0]
	cfg := tinyConfig(3)
	cpu := runTiny(t, net, t.TempDir(), cfg, nil, false, nil)
	dev := runTiny(t, net, t.TempDir(), cfg, NewBackend(NewRefExecutor, Lowering{Precision: BF16}), false, nil)
	if cpu.err != nil || dev.err != nil {
		t.Fatalf("cpu: %v, device: %v", cpu.err, dev.err)
	}
	if len(dev.losses) != len(cpu.losses) || len(dev.losses) == 0 {
		t.Fatalf("%d and %d steps", len(cpu.losses), len(dev.losses))
	}
	if !near(dev.losses[0], cpu.losses[0], BF16ForwardTol) {
		t.Errorf("first step: loss %.7g in bf16, %.7g on the CPU", dev.losses[0], cpu.losses[0])
	}
	for i := range cpu.losses {
		if !near(dev.losses[i], cpu.losses[i], 0.1) || math.IsNaN(dev.losses[i]) {
			t.Errorf("step %d: loss %.7g in bf16, %.7g on the CPU", i, dev.losses[i], cpu.losses[i])
		}
	}
	last := len(cpu.res.History) - 1
	if d, c := dev.res.History[last].Test, cpu.res.History[last].Test; d.Examples != c.Examples || !near(d.Loss, c.Loss, 0.1) {
		t.Errorf("test metrics: bf16 %+v, CPU %+v", d, c)
	}
	worst := 0.0
	for name, w := range cpu.params {
		worst = max(worst, RelDiff(dev.params[name], w))
	}
	t.Logf("losses bf16 %.5g, CPU %.5g; worst weight difference %.3g", dev.losses, cpu.losses, worst)
	if worst == 0 {
		t.Errorf("weights after training equal the CPU's: the bf16 path did not round")
	}
}
