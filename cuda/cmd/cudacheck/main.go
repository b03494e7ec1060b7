//go:build gpu

// Command cudacheck runs the device checks and benchmarks of the CUDA path
// on a GPU machine, in one call (scripts/gpu-check.sh):
//
//	cudacheck probe                      driver, PTX load, kernels and SGEMM against the CPU
//	cudacheck trace  --arch resnet-20    every instruction of one step against the CPU interpreter
//	cudacheck check  --arch resnet-20    one training step against graph.Program + train.SGD
//	cudacheck bench  --arch resnet-20    training images/s, step time, device memory
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/cuda"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/train"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

var sgdOpts = cuda.SGDConfig{Momentum: 0.9, WeightDecay: 1e-4, Nesterov: true}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: cudacheck probe|trace|check|bench [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	archName := fs.String("arch", "resnet-20", "architecture")
	batch := fs.Int("batch", 128, "batch size")
	steps := fs.Int("steps", 50, "timed steps (bench)")
	warmup := fs.Int("warmup", 5, "untimed steps (bench)")
	useGraph := fs.Bool("graph", true, "run the step as one CUDA graph (bench)")
	tf32 := fs.Bool("tf32", false, "TF32 tensor cores for the GEMMs")
	tol := fs.Float64("tol", 1e-4, "relative tolerance (check)")
	fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "probe":
		err = probe()
	case "trace":
		err = trace(*archName, *batch)
	case "check":
		err = check(*archName, *batch, *tol)
	case "bench":
		err = bench(*archName, *batch, *steps, *warmup, *useGraph, *tf32)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
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
	fmt.Println("device:", d.Name)
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
	diff := relDiff(got, ref.Buf(c))
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

func relDiff(a, b []float32) float64 {
	var num, den float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

type setup struct {
	g  *graph.Graph
	p  *graph.Program
	s  *cuda.Step
	xs []float32
	ys []int
}

func prepare(name string, batch int) (*setup, error) {
	g, err := arch.Build(arch.Config{Arch: name, Batch: batch, Dtype: tensor.Float32, Seed: 7})
	if err != nil {
		return nil, err
	}
	p, err := graph.Compile(g, "loss")
	if err != nil {
		return nil, err
	}
	xn, _ := g.Input("x")
	yn, _ := g.Input("y")
	rng := rand.New(rand.NewPCG(3, 4))
	xs := make([]float32, xn.Shape().TotalSize())
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	ys := make([]int, batch)
	for i := range ys {
		ys[i] = rng.IntN(10)
	}
	if err := gorgonia.Let(xn, tensor.New(tensor.WithShape(xn.Shape()...), tensor.WithBacking(append([]float32(nil), xs...)))); err != nil {
		return nil, err
	}
	if err := gorgonia.Let(yn, tensor.New(tensor.WithShape(batch), tensor.WithBacking(append([]int(nil), ys...)))); err != nil {
		return nil, err
	}
	s, err := cuda.Lower(p, sgdOpts)
	if err != nil {
		return nil, err
	}
	if err := s.Plan(); err != nil {
		return nil, err
	}
	fmt.Printf("%s batch %d: %s\n", name, batch, s.Describe())
	return &setup{g: g, p: p, s: s, xs: xs, ys: ys}, nil
}

// upload copies the graph's current parameters and state and the batch.
func (su *setup) upload(d *cuda.Device, ref *cuda.Ref) error {
	for i, sl := range su.s.Params {
		w := su.g.Params()[i].Node.Value().Data().([]float32)
		if ref != nil {
			copy(ref.Buf(sl.Param), w)
		}
		if err := d.Write(sl.Param, w); err != nil {
			return err
		}
	}
	for _, b := range su.g.Buffers() {
		if id, ok := su.s.States[b.Name]; ok {
			if ref != nil {
				copy(ref.Buf(id), b.Value.Float32s())
			}
			if err := d.Write(id, b.Value.Float32s()); err != nil {
				return err
			}
		}
	}
	if ref != nil {
		copy(ref.Buf(su.s.X), su.xs)
		ref.SetInts(su.s.Y, su.ys)
	}
	return d.SetBatch(su.xs, su.ys)
}

// trace runs the step instruction by instruction on the device and the CPU
// interpreter and reports the first instruction whose outputs differ.
func trace(name string, batch int) error {
	su, err := prepare(name, batch)
	if err != nil {
		return err
	}
	d, err := cuda.Open(su.s, cuda.Options{})
	if err != nil {
		return err
	}
	defer d.Close()
	ref := cuda.NewRef(su.s)
	if err := su.upload(d, ref); err != nil {
		return err
	}
	worst := 0.0
	for i, in := range su.s.Instrs[:su.s.OptStart] {
		if err := d.RunRange(i, i+1); err != nil {
			return err
		}
		if err := ref.Run(i, i+1); err != nil {
			return err
		}
		for _, w := range in.Writes {
			b := su.s.Bufs[w]
			if b.Int {
				continue
			}
			got, err := d.Read(w)
			if err != nil {
				return err
			}
			diff := relDiff(got, ref.Buf(w))
			worst = max(worst, diff)
			if diff > 1e-4 || math.IsNaN(diff) {
				return fmt.Errorf("instruction %d %v: %s differs from the CPU interpreter by %.3g", i, in, b.Name, diff)
			}
		}
	}
	fmt.Printf("trace: %d instructions, every output within %.2e of the CPU interpreter: OK\n", su.s.OptStart, worst)
	return nil
}

// check: one training step from identical weights and data on the CPU
// (graph.Program.Train, train.SGD) and the device.
func check(name string, batch int, tol float64) error {
	su, err := prepare(name, batch)
	if err != nil {
		return err
	}
	d, err := cuda.Open(su.s, cuda.Options{})
	if err != nil {
		return err
	}
	defer d.Close()
	if err := su.upload(d, nil); err != nil {
		return err
	}
	t0 := time.Now()
	if err := su.p.Train(); err != nil {
		return err
	}
	fmt.Printf("check: CPU forward+backward %.2f s\n", time.Since(t0).Seconds())
	if err := d.Forward(); err != nil {
		return err
	}
	fail := 0
	cmp := func(what string, got, want []float32) {
		diff := relDiff(got, want)
		if diff > tol || math.IsNaN(diff) {
			fail++
			fmt.Printf("check: %s relative difference %.3g > %.0e\n", what, diff, tol)
		}
	}
	loss, err := d.Read(su.s.Loss)
	if err != nil {
		return err
	}
	cmp("loss", loss, []float32{float32(su.p.Loss())})
	fmt.Printf("check: loss GPU %.7f CPU %.7f\n", loss[0], su.p.Loss())
	worst := 0.0
	for i, sl := range su.s.Params {
		got, err := d.Read(sl.Grad)
		if err != nil {
			return err
		}
		want, _ := su.p.Grad(su.g.Params()[i])
		worst = max(worst, relDiff(got, want.Float32s()))
		cmp("gradient of "+sl.Name, got, want.Float32s())
	}
	fmt.Printf("check: worst gradient relative difference %.3g over %d parameters\n", worst, len(su.s.Params))
	for _, b := range su.g.Buffers() {
		if id, ok := su.s.States[b.Name]; ok {
			got, err := d.Read(id)
			if err != nil {
				return err
			}
			cmp("running statistic "+b.Name, got, b.Value.Float32s())
		}
	}
	opt, err := train.NewSGD(su.g.Params(), train.SGDOptions{Momentum: sgdOpts.Momentum, WeightDecay: sgdOpts.WeightDecay, Nesterov: true})
	if err != nil {
		return err
	}
	defer opt.Close()
	if err := opt.Step(su.p, 0.1); err != nil {
		return err
	}
	if err := d.Optimize(0.1); err != nil {
		return err
	}
	worst = 0
	for i, sl := range su.s.Params {
		got, err := d.Read(sl.Param)
		if err != nil {
			return err
		}
		want := su.g.Params()[i].Node.Value().Data().([]float32)
		worst = max(worst, relDiff(got, want))
		cmp("parameter after SGD "+sl.Name, got, want)
	}
	fmt.Printf("check: worst parameter relative difference after SGD %.3g\n", worst)
	if fail > 0 {
		return fmt.Errorf("check: %d comparisons above %.0e", fail, tol)
	}
	fmt.Printf("check: %s batch %d one training step GPU vs CPU within %.0e: OK\n", name, batch, tol)
	return nil
}

type benchResult struct {
	Arch      string  `json:"arch"`
	Batch     int     `json:"batch"`
	Device    string  `json:"device"`
	Graph     bool    `json:"cuda_graph"`
	TF32      bool    `json:"tf32"`
	TrainImgS float64 `json:"train_img_s"`
	StepMs    float64 `json:"step_ms"`
	Launches  int     `json:"launches"`
	ArenaMiB  float64 `json:"arena_mib"`
	DeviceMiB float64 `json:"device_used_mib"`
	Loss      float64 `json:"loss_last"`
}

func bench(name string, batch, steps, warmup int, useGraph, tf32 bool) error {
	su, err := prepare(name, batch)
	if err != nil {
		return err
	}
	d, err := cuda.Open(su.s, cuda.Options{Graph: useGraph, TF32: tf32})
	if err != nil {
		return err
	}
	defer d.Close()
	if err := su.upload(d, nil); err != nil {
		return err
	}
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
	used, _, err := d.MemInfo()
	if err != nil {
		return err
	}
	r := benchResult{Arch: name, Batch: batch, Device: d.Name, Graph: useGraph, TF32: tf32,
		TrainImgS: float64(steps*batch) / dt, StepMs: dt * 1e3 / float64(steps), Launches: len(su.s.Instrs),
		ArenaMiB: float64(su.s.ArenaBytes) / (1 << 20), DeviceMiB: float64(used) / (1 << 20), Loss: m.Loss}
	js, _ := json.Marshal(r)
	fmt.Println(string(js))
	if math.IsNaN(m.Loss) {
		return fmt.Errorf("bench: loss is NaN")
	}
	return nil
}
