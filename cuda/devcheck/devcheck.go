//go:build gpu

// Package devcheck is the CUDA path's device checks and benchmarks, run on a
// GPU machine as `eraserelu gpu ...` (scripts/gpu-check.sh):
//
//	gpu probe                      driver, PTX load, kernels and SGEMM against the CPU
//	gpu trace   --arch resnet-20   every kernel of one step against the CPU interpreter on identical inputs, then the drift
//	gpu check   --arch resnet-20   one training step against graph.Program + train.SGD, float32 and float64
//	gpu profile --arch resnet-20   device time per kernel of one step (CUDA events)
//	gpu bench   --arch resnet-20   training images/s, step time, device memory (JSON)
package devcheck

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/eraserelu/eraserelu/cuda"
	"github.com/eraserelu/eraserelu/cuda/kernels"
	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/pipeline"
	"github.com/eraserelu/eraserelu/train"
	"gorgonia.org/tensor"
)

var sgdOpts = train.SGDOptions{Momentum: 0.9, WeightDecay: 1e-4, Nesterov: true}

// Main runs one check: args are the command and its flags. A failed check
// is an error whose text starts with the check's name.
func Main(args []string) error {
	if len(args) < 1 {
		return fmt.Errorf("usage: gpu probe|trace|check|profile|bench [flags]")
	}
	fs := flag.NewFlagSet("gpu "+args[0], flag.ContinueOnError)
	archName := fs.String("arch", "resnet-20", "architecture")
	batch := fs.Int("batch", 128, "batch size")
	steps := fs.Int("steps", 50, "timed steps (bench)")
	warmup := fs.Int("warmup", 5, "untimed steps (bench)")
	useGraph := fs.Bool("graph", true, "run the step as one CUDA graph (bench)")
	precision := fs.String("precision", "fp32", "GEMM arithmetic (bench, check): fp32 exact, tf32 TF32 tensor cores (bench), bf16 mixed precision")
	tol := fs.Float64("tol", 1e-4, "relative tolerance (check; trace on identical inputs)")
	eraseP := fs.Float64("erase", 0, "proportion of modules whose trailing ReLU is erased (bench)")
	reps := fs.Int("reps", 5, "profiled steps averaged (profile)")
	recompute := fs.Bool("recompute-bn", false, "recompute batch-norm outputs in the backward pass instead of keeping them (bench, check, trace)")
	direct := fs.Bool("direct-conv", false, "fp32 stride-1 3x3 convolutions (forward, data gradient) by conv_direct, without column buffers (bench, check, trace, profile)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	prec, err := cuda.ParsePrecision(*precision)
	if err != nil {
		return fmt.Errorf("gpu %s --precision: %w", args[0], err)
	}
	low := cuda.Lowering{Precision: prec, RecomputeBN: *recompute, DirectConv: *direct}
	switch args[0] {
	case "probe":
		return probe()
	case "trace":
		if prec == cuda.TF32 {
			return fmt.Errorf("gpu trace --precision tf32: trace compares fp32 and bf16 steps only")
		}
		return trace(*archName, *batch, *tol, low)
	case "check":
		if prec == cuda.TF32 {
			return fmt.Errorf("gpu check --precision tf32: check judges fp32 and bf16 steps only")
		}
		return check(*archName, *batch, *tol, low)
	case "profile":
		return profile(*archName, *batch, *reps, low)
	case "bench":
		return bench(*archName, *batch, *steps, *warmup, *useGraph, low, *eraseP)
	}
	return fmt.Errorf("unknown gpu command %q (probe, trace, check, profile, bench)", args[0])
}

// probe: a hand-made step of fill, add, relu and a 1024^3 SGEMM, on the
// device and the CPU interpreter.
func probe() error {
	const n = 1024
	s := &cuda.Step{States: map[string]int{}}
	mk := func(name string, e int, k cuda.BufKind) int {
		s.Bufs = append(s.Bufs, &cuda.Buf{Name: name, Elems: e, Kind: k})
		return len(s.Bufs) - 1
	}
	a, b, c := mk("a", n*n, cuda.Input), mk("b", n*n, cuda.State), mk("c", n*n, cuda.Metrics)
	s.X, s.Y = a, mk("y", 1, cuda.Input)
	s.Metrics, s.Hyper = mk("metrics", 4, cuda.Metrics), mk("hyper", 2, cuda.Hyper)
	t1, t2 := mk("t1", n*n, cuda.Activation), mk("t2", n*n, cuda.Activation)
	g := cuda.GemmArgs{M: n, N: n, K: n, LDA: n, LDB: n, LDC: n, Batch: 1}
	s.Instrs = []cuda.Instr{
		{Kernel: "fill", Ints: []int{n * n}, Floats: []float64{-0.25}, Bufs: []int{t1}, Writes: []int{t1}},
		{Kernel: "add", Ints: []int{n * n}, Bufs: []int{a, t1, t2}, Writes: []int{t2}},
		{Kernel: "relu_fwd", Ints: []int{n * n}, Bufs: []int{t2, t1}, Writes: []int{t1}},
		{Kernel: "gemm", Ints: g.Ints(), Floats: []float64{1, 0}, Bufs: []int{t1, b, c}, Writes: []int{c}},
	}
	s.OptStart = len(s.Instrs)
	if err := s.Plan(); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	av, bv := make([]float32, n*n), make([]float32, n*n)
	for i := range av {
		av[i], bv[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
	}
	ref := cuda.NewRef(s)
	copy(ref.Buf(a), av)
	copy(ref.Buf(b), bv)
	if err := ref.Run(0, len(s.Instrs)); err != nil {
		return err
	}
	d, err := cuda.Open(s, cuda.Options{})
	if err != nil {
		return err
	}
	defer d.Close()
	fmt.Printf("device: %s, compute capability %d.%d, PTX for %s JIT-loaded in %.0f ms\n", d.Name, d.Capability[0], d.Capability[1], kernels.Arch, d.ModuleLoad.Seconds()*1e3)
	if err := d.Write(a, av); err != nil {
		return err
	}
	if err := d.Write(b, bv); err != nil {
		return err
	}
	if err := d.Forward(); err != nil {
		return err
	}
	got, err := d.Read(c)
	if err != nil {
		return err
	}
	diff := cuda.RelDiff(got, ref.Buf(c))
	fmt.Printf("probe: fill+add+relu+SGEMM %dx%dx%d relative difference to the CPU %.2e\n", n, n, n, diff)
	t0 := time.Now()
	const reps = 20
	for i := 0; i < reps; i++ {
		if err := d.Forward(); err != nil {
			return err
		}
	}
	dt := time.Since(t0).Seconds() / reps
	fmt.Printf("probe: step of 4 launches %.3f ms, %.1f TFLOP/s in the GEMM bound\n", dt*1e3, 2*math.Pow(n, 3)/dt/1e12)
	if diff > 1e-5 {
		return fmt.Errorf("probe: relative difference %.2e", diff)
	}
	fmt.Println("probe: OK")
	return nil
}

// doubles decodes a Double buffer (float64 pairs of 4-byte elements).
func doubles(v []float32) []float64 {
	out := make([]float64, len(v)/2)
	for i := range out {
		out[i] = cuda.Float64At(v, i)
	}
	return out
}

type setup struct {
	g   *graph.Graph
	p   *graph.Program
	s   *cuda.Step
	inf *cuda.Step // the inference pass, lowered onto s
	xs  []float32
	ys  []int
}

// checkNet is the network the checks run: seed 7, with the trailing ReLU
// of the given proportion of its modules erased.
func checkNet(name string, batch int, dtype tensor.Dtype, eraseP float64) pipeline.Net {
	n := pipeline.Net{Arch: name, Batch: batch, Dtype: dtype, Seed: 7}
	if eraseP > 0 {
		n.Erase = &erase.Options{Proportion: eraseP}
	}
	return n
}

// prepare builds the architecture (with the trailing ReLU of the given
// proportion of its modules erased), compiles, lowers and plans it, and
// draws a batch.
func prepare(name string, batch int, eraseP float64, low cuda.Lowering) (*setup, error) {
	nw, err := pipeline.Compile(checkNet(name, batch, tensor.Float32, eraseP))
	if err != nil {
		return nil, err
	}
	g, p := nw.Graph, nw.Program
	xs, ys, err := cuda.BindRandomBatch(g, batch)
	if err != nil {
		return nil, err
	}
	s, inf, err := cuda.LowerProgram(p, sgdOpts, low)
	if err != nil {
		return nil, err
	}
	fmt.Printf("%s batch %d: %s\n", name, batch, s.Describe())
	return &setup{g: g, p: p, s: s, inf: inf, xs: xs, ys: ys}, nil
}

// open opens the device for su's step and uploads su's weights, state and
// batch (into ref too, when given).
func (su *setup) open(opt cuda.Options, ref *cuda.Ref) (*cuda.Device, error) {
	d, err := cuda.Open(su.s, opt)
	if err != nil {
		return nil, err
	}
	if err := su.upload(d, ref); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// upload copies the graph's current parameters and state and the batch
// to the device (and into ref, when given).
func (su *setup) upload(d *cuda.Device, ref *cuda.Ref) error {
	if err := cuda.WriteWeights(su.s, su.g, d.Write); err != nil {
		return err
	}
	if ref != nil {
		if err := cuda.WriteWeights(su.s, su.g, ref.Write); err != nil {
			return err
		}
		if err := ref.SetBatch(su.xs, su.ys); err != nil {
			return err
		}
	}
	return d.SetBatch(su.xs, su.ys)
}

// trace runs the forward and backward pass instruction by instruction on
// the device and the CPU interpreter, twice:
//
//   - local: before each instruction the interpreter is given the device's
//     current inputs, so each kernel is judged on identical inputs (a wrong
//     kernel shows here, named, whatever happened before it);
//   - drift: both run on their own from identical weights, as a real step
//     does; float32 summation order (cuBLAS vs the interpreter's GEMM) makes
//     them drift, and a pre-activation within rounding of zero can flip a
//     ReLU, which moves that element's gradient from dy to 0. The drift pass
//     counts those flips, so a large end-to-end difference can be told apart
//     from a wrong kernel.
//
// With prec BF16 the bf16 step is traced: every write of a bf16 buffer (the
// roundings to_bf16 and im2col_bf16*, the batch-norm applies and adds that
// store bf16 activations) must be bit-identical, the GEMMs on bf16
// operands agree as the fp32 ones do (exact products, fp32 sums in another
// order).
func trace(name string, batch int, tol float64, low cuda.Lowering) error {
	su, err := prepare(name, batch, 0, low)
	if err != nil {
		return err
	}
	ref := cuda.NewRef(su.s)
	d, err := su.open(cuda.Options{Lowering: low}, ref)
	if err != nil {
		return err
	}
	defer d.Close()
	type stat struct {
		n     int
		worst float64
		at    string
	}
	perKernel := map[string]*stat{}
	var bad []string
	for i, in := range su.s.Instrs[:su.s.OptStart] {
		for _, id := range in.Bufs {
			if su.s.Bufs[id].Int {
				continue
			}
			v, err := d.Read(id)
			if err != nil {
				return err
			}
			copy(ref.Buf(id), v)
		}
		if err := d.RunRange(i, i+1); err != nil {
			return err
		}
		if err := ref.Run(i, i+1); err != nil {
			return err
		}
		st := perKernel[in.Kernel]
		if st == nil {
			st = &stat{}
			perKernel[in.Kernel] = st
		}
		st.n++
		for _, w := range in.Writes {
			b := su.s.Bufs[w]
			if b.Int {
				continue
			}
			got, err := d.Read(w)
			if err != nil {
				return err
			}
			diff := cuda.RelDiff(got, ref.Buf(w))
			switch {
			case b.Double:
				diff = cuda.RelDiff(doubles(got), doubles(ref.Buf(w)))
			case b.BF16:
				diff = cuda.RelDiff(cuda.BF16Values(got, b.Elems), cuda.BF16Values(ref.Buf(w), b.Elems))
			}
			if diff > st.worst || math.IsNaN(diff) {
				st.worst, st.at = diff, fmt.Sprintf("#%d %s", i, in.Node)
			}
			// A rounding to bf16 is bit for bit the interpreter's.
			if (diff > tol || math.IsNaN(diff) || b.BF16 && diff != 0) && len(bad) < 10 {
				bad = append(bad, fmt.Sprintf("instruction %d %v: %s differs by %.3g", i, in, b.Name, diff))
			}
		}
	}
	names := make([]string, 0, len(perKernel))
	for k := range perKernel {
		names = append(names, k)
	}
	sort.Strings(names)
	worst := 0.0
	for _, k := range names {
		st := perKernel[k]
		worst = max(worst, st.worst)
		fmt.Printf("trace local: %-14s %4d launches, worst relative difference %.2e (%s)\n", k, st.n, st.worst, st.at)
	}
	for _, b := range bad {
		fmt.Println("trace local: FAIL", b)
	}

	// Drift: fresh start, both sides on their own. The forward output a
	// relu_bwd reads is live until that relu_bwd, so reading it on the
	// device right before it, and comparing with the interpreter run to the
	// same point, counts the flipped elements.
	flips, masked := 0, 0
	ref2 := cuda.NewRef(su.s)
	if err := su.upload(d, ref2); err != nil {
		return err
	}
	prev := 0
	for i, in := range su.s.Instrs[:su.s.OptStart] {
		if in.Kernel != "relu_bwd" {
			continue
		}
		if err := d.RunRange(prev, i); err != nil {
			return err
		}
		if err := ref2.Run(prev, i); err != nil {
			return err
		}
		prev = i
		y, err := d.Read(in.Bufs[0])
		if err != nil {
			return err
		}
		want := ref2.Buf(in.Bufs[0])
		for j := range y {
			if (y[j] > 0) != (want[j] > 0) {
				flips++
			}
		}
		masked += len(y)
	}
	if err := d.RunRange(prev, su.s.OptStart); err != nil {
		return err
	}
	if err := ref2.Run(prev, su.s.OptStart); err != nil {
		return err
	}
	drift := 0.0
	for _, sl := range su.s.Params {
		got, err := d.Read(sl.Grad)
		if err != nil {
			return err
		}
		drift = max(drift, cuda.RelDiff(got, ref2.Buf(sl.Grad)))
	}
	fmt.Printf("trace drift: %d of %d ReLU outputs change sign between the device and the interpreter; worst gradient relative difference %.3g\n", flips, masked, drift)
	if len(bad) > 0 {
		return fmt.Errorf("trace: %d kernel outputs differ by more than %.0e on identical inputs (worst %.3g)", len(bad), tol, worst)
	}
	fmt.Printf("trace: %d instructions, every kernel within %.2e of the CPU interpreter on identical inputs: OK\n", su.s.OptStart, worst)
	return nil
}

// twin64 builds the float64 copy of su's graph with su's current weights,
// running statistics and batch: the reference both float32 paths are
// measured against.
func (su *setup) twin64(name string, batch int) (*graph.Graph, *graph.Program, error) {
	nw, err := pipeline.Compile(checkNet(name, batch, tensor.Float64, 0))
	if err != nil {
		return nil, nil, err
	}
	g, p := nw.Graph, nw.Program
	if err := cuda.CopyWeights64(g, su.g); err != nil {
		return nil, nil, err
	}
	if err := cuda.BindBatch(g, su.xs, su.ys); err != nil {
		return nil, nil, err
	}
	return g, p, nil
}

// check: one training step from identical weights and data on the device,
// on the CPU in float32 (graph.Program.Train, train.SGD) and on the CPU in
// float64. Forward quantities (loss, running statistics) must agree within
// tol. Gradients and updated parameters must be as close to the float64
// step as the CPU's own float32 step is: a ReLU whose pre-activation lies
// within rounding of zero flips with the summation order (see trace), so
// two correct float32 implementations differ by more than tol at batch 128;
// the test is that the device is no less accurate than the CPU kernels
// (at most 2x the CPU's float32 error, or tol, whichever is larger).
//
// A bf16 step (prec BF16) is judged by the criterion of the reference
// interpreter's test (cuda.TestBF16StepMatchesFloat64): the forward
// quantities within cuda.BF16ForwardTol of float64; gradients and the
// update no further from float64 than 2x the reference interpreter's bf16
// step on the same inputs is (the same rounding points, other summation
// orders), or BF16ForwardTol; the CPU float32 step's distance is printed
// beside them.
func check(name string, batch int, tol float64, low cuda.Lowering) error {
	prec := low.Precision
	su, err := prepare(name, batch, 0, low)
	if err != nil {
		return err
	}
	d, err := su.open(cuda.Options{Lowering: low}, nil)
	if err != nil {
		return err
	}
	defer d.Close()
	g64, p64, err := su.twin64(name, batch)
	if err != nil {
		return err
	}
	// The peer whose own distance to float64 sets the limit: the CPU
	// float32 step, or for bf16 the reference interpreter's bf16 step, set
	// up before the CPU steps update the graph's running statistics.
	peer := "CPU float32"
	var ref *cuda.Ref
	if prec == cuda.BF16 {
		peer, tol = "bf16 reference interpreter", cuda.BF16ForwardTol
		ref = cuda.NewRef(su.s)
		if err := cuda.WriteWeights(su.s, su.g, ref.Write); err != nil {
			return err
		}
		if err := ref.SetBatch(su.xs, su.ys); err != nil {
			return err
		}
		t0 := time.Now()
		if err := ref.Run(0, su.s.OptStart); err != nil {
			return err
		}
		fmt.Printf("check: bf16 reference interpreter forward+backward %.2f s\n", time.Since(t0).Seconds())
	}
	t0 := time.Now()
	if err := su.p.Train(); err != nil {
		return err
	}
	if err := p64.Train(); err != nil {
		return err
	}
	fmt.Printf("check: CPU forward+backward float32 and float64 %.2f s\n", time.Since(t0).Seconds())
	if err := d.Forward(); err != nil {
		return err
	}
	fail := 0
	// exact: forward quantities against the CPU float32 step, or for bf16
	// against float64.
	exact := func(what string, got []float32, want32 []float32, want64 []float64) {
		diff := cuda.RelDiff(got, want32)
		if ref != nil {
			diff = cuda.RelDiff(got, want64)
		}
		if diff > tol || math.IsNaN(diff) {
			fail++
			fmt.Printf("check: %s relative difference %.3g > %.0e\n", what, diff, tol)
		}
	}
	loss, err := d.Read(su.s.Loss)
	if err != nil {
		return err
	}
	exact("loss", loss, []float32{float32(su.p.Loss())}, []float64{p64.Loss()})
	fmt.Printf("check: loss device %.7f CPU float32 %.7f CPU float64 %.7f\n", loss[0], su.p.Loss(), p64.Loss())
	st64 := map[string][]float64{}
	for _, b := range g64.Buffers() {
		st64[b.Name] = b.Value.Float64s()
	}
	for _, b := range su.g.Buffers() {
		if id, ok := su.s.States[b.Name]; ok {
			got, err := d.Read(id)
			if err != nil {
				return err
			}
			exact("running statistic "+b.Name, got, b.Value.Float32s(), st64[b.Name])
		}
	}
	// compare gathers, per parameter, the device's and the CPU float32's
	// distance to float64 and to each other, and applies the accuracy test.
	compare := func(what string, dev func(i int) ([]float32, error), cpu32 func(i int) []float32, cpu64 func(i int) []float64, refOf func(sl cuda.ParamSlot) int) error {
		var floor, devErr, devPeer, cpu32Err float64
		worstName := ""
		for i, sl := range su.s.Params {
			got, err := dev(i)
			if err != nil {
				return err
			}
			c32, c64 := cpu32(i), cpu64(i)
			cpu32Err = max(cpu32Err, cuda.RelDiff(c32, c64))
			if ref != nil {
				c32 = ref.Buf(refOf(sl))
			}
			floor = max(floor, cuda.RelDiff(c32, c64))
			if e := cuda.RelDiff(got, c64); e > devErr || math.IsNaN(e) {
				devErr, worstName = e, sl.Name
			}
			devPeer = max(devPeer, cuda.RelDiff(got, c32))
		}
		limit := max(tol, 2*floor)
		fmt.Printf("check: %s: worst relative difference to float64: device %.3g (%s), %s %.3g, CPU float32 %.3g; device vs %s %.3g\n",
			what, devErr, worstName, peer, floor, cpu32Err, peer, devPeer)
		if devErr > limit || math.IsNaN(devErr) {
			fail++
			fmt.Printf("check: %s: device error %.3g exceeds max(tol, 2 x %s error) = %.3g\n", what, devErr, peer, limit)
		}
		return nil
	}
	err = compare("gradients",
		func(i int) ([]float32, error) { return d.Read(su.s.Params[i].Grad) },
		func(i int) []float32 { g, _ := su.p.Grad(su.g.Params()[i]); return g.Float32s() },
		func(i int) []float64 { g, _ := p64.Grad(g64.Params()[i]); return g.Float64s() },
		func(sl cuda.ParamSlot) int { return sl.Grad })
	if err != nil {
		return err
	}
	sgd := train.SGDOptions{Momentum: sgdOpts.Momentum, WeightDecay: sgdOpts.WeightDecay, Nesterov: true}
	for _, tw := range []struct {
		g *graph.Graph
		p *graph.Program
	}{{su.g, su.p}, {g64, p64}} {
		opt, err := train.NewSGD(tw.g.Params(), sgd)
		if err != nil {
			return err
		}
		err = opt.Step(tw.p, 0.1)
		opt.Close()
		if err != nil {
			return err
		}
	}
	if err := d.Optimize(0.1); err != nil {
		return err
	}
	if ref != nil { // its SGD: the forward and backward ran above
		h := ref.Buf(su.s.Hyper)
		h[cuda.HyperLR], h[cuda.HyperFirst] = 0.1, 1
		if err := ref.Run(su.s.OptStart, len(su.s.Instrs)); err != nil {
			return err
		}
	}
	err = compare("parameters after SGD",
		func(i int) ([]float32, error) { return d.Read(su.s.Params[i].Param) },
		func(i int) []float32 { return su.g.Params()[i].Node.Value().Data().([]float32) },
		func(i int) []float64 { return g64.Params()[i].Node.Value().Data().([]float64) },
		func(sl cuda.ParamSlot) int { return sl.Param })
	if err != nil {
		return err
	}
	if fail > 0 {
		return fmt.Errorf("check: %d comparisons failed", fail)
	}
	fmt.Printf("check: %s batch %d one %s training step: forward within %.0e, gradients and update as accurate as the %s: OK\n", name, batch, prec, tol, peer)
	return nil
}

type benchResult struct {
	Arch      string  `json:"arch"`
	Batch     int     `json:"batch"`
	Device    string  `json:"device"`
	Erase     float64 `json:"erase"`
	Graph     bool    `json:"cuda_graph"`
	Precision string  `json:"precision"`
	Recompute bool    `json:"recompute_bn"`
	Direct    bool    `json:"direct_conv"`
	TrainImgS float64 `json:"train_img_s"`
	EvalImgS  float64 `json:"eval_img_s"`
	StepMs    float64 `json:"step_ms"`
	Launches  int     `json:"launches"`
	ArenaMiB  float64 `json:"arena_mib"`
	// ArenaFP32MiB: with --precision bf16, the fp32 step's planned arena
	// for the same network and batch (the memory bf16 saves).
	ArenaFP32MiB float64 `json:"arena_fp32_mib,omitempty"`
	DeviceMiB    float64 `json:"device_used_mib"`
	Loss         float64 `json:"loss_last"`
}

func bench(name string, batch, steps, warmup int, useGraph bool, low cuda.Lowering, eraseP float64) error {
	su, err := prepare(name, batch, eraseP, low)
	if err != nil {
		return err
	}
	d, err := su.open(cuda.Options{Graph: useGraph, Lowering: low}, nil)
	if err != nil {
		return err
	}
	defer d.Close()
	var m cuda.StepMetrics
	for i := 0; i < warmup; i++ {
		if err := d.SetBatch(su.xs, su.ys); err != nil {
			return err
		}
		if m, err = d.Step(0.1); err != nil {
			return err
		}
	}
	t0 := time.Now()
	for i := 0; i < steps; i++ {
		if err := d.SetBatch(su.xs, su.ys); err != nil {
			return err
		}
		if m, err = d.Step(0.1); err != nil {
			return err
		}
	}
	dt := time.Since(t0).Seconds()
	// Evaluation: the inference pass (batch norm on its running statistics)
	// on the staged batch, metrics back after each batch as an evaluation
	// loop needs them.
	for i := 0; i < warmup; i++ {
		if _, err := d.Infer(su.inf); err != nil {
			return err
		}
	}
	t1 := time.Now()
	for i := 0; i < steps; i++ {
		if _, err := d.Infer(su.inf); err != nil {
			return err
		}
	}
	evalDt := time.Since(t1).Seconds()
	used, _, err := d.MemInfo()
	if err != nil {
		return err
	}
	r := benchResult{Arch: name, Batch: batch, Device: d.Name, Erase: eraseP, Graph: useGraph, Precision: string(low.Precision), Recompute: low.RecomputeBN, Direct: low.DirectConv,
		TrainImgS: float64(steps*batch) / dt, EvalImgS: float64(steps*batch) / evalDt, StepMs: dt * 1e3 / float64(steps), Launches: len(su.s.Instrs),
		ArenaMiB: float64(su.s.ArenaBytes) / (1 << 20), DeviceMiB: float64(used) / (1 << 20), Loss: m.Loss}
	if low.Precision == cuda.BF16 {
		low32 := low
		low32.Precision = cuda.FP32
		s32, _, err := cuda.LowerProgram(su.p, sgdOpts, low32)
		if err != nil {
			return err
		}
		r.ArenaFP32MiB = float64(s32.ArenaBytes) / (1 << 20)
	}
	js, _ := json.Marshal(r)
	fmt.Println(string(js))
	if math.IsNaN(m.Loss) {
		return fmt.Errorf("bench: loss is NaN")
	}
	return nil
}

// profile times every launch of a training step with CUDA events (the
// average of reps steps after a warm-up) and prints the time per kernel and
// the most expensive launches: where the step's time goes on the device.
func profile(name string, batch, reps int, low cuda.Lowering) error {
	su, err := prepare(name, batch, 0, low)
	if err != nil {
		return err
	}
	d, err := su.open(cuda.Options{Lowering: low}, nil)
	if err != nil {
		return err
	}
	defer d.Close()
	for i := 0; i < 3; i++ {
		if _, err := d.Step(0.1); err != nil {
			return err
		}
	}
	n := len(su.s.Instrs)
	avg := make([]float64, n)
	for r := 0; r < reps; r++ {
		ms, err := d.Profile(0.1)
		if err != nil {
			return err
		}
		for i, t := range ms {
			avg[i] += t / float64(reps)
		}
	}
	type row struct {
		name  string
		n     int
		ms    float64
		bytes float64
	}
	byKernel := map[string]*row{}
	total := 0.0
	for i, in := range su.s.Instrs {
		k := in.Kernel
		if k == "gemm" {
			g, _ := cuda.DecodeGemm(in.Ints)
			k = fmt.Sprintf("gemm %s", gemmClass(g))
		}
		r := byKernel[k]
		if r == nil {
			r = &row{name: k}
			byKernel[k] = r
		}
		r.n++
		r.ms += avg[i]
		total += avg[i]
		for _, id := range in.Bufs {
			r.bytes += float64(su.s.Bufs[id].Bytes())
		}
	}
	rows := make([]*row, 0, len(byKernel))
	for _, r := range byKernel {
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].ms > rows[j].ms })
	fmt.Printf("profile: %s batch %d, %d launches, %.3f ms per step in launches (events between launches)\n", name, batch, n, total)
	for _, r := range rows {
		fmt.Printf("profile: %-34s %4d launches %8.3f ms %5.1f%%  %7.0f GB/s (buffer bytes / time)\n",
			r.name, r.n, r.ms, 100*r.ms/total, r.bytes/(r.ms*1e-3)/1e9)
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return avg[idx[a]] > avg[idx[b]] })
	for _, i := range idx[:min(25, n)] {
		fmt.Printf("profile: top %8.3f ms  #%d %v\n", avg[i], i, su.s.Instrs[i])
	}
	return nil
}

func gemmClass(g cuda.GemmArgs) string {
	return fmt.Sprintf("m%d n%d k%d b%d ta%v tb%v", g.M, g.N, g.K, g.Batch, g.TransA, g.TransB)
}
