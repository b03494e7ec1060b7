// Package bench measures training and inference throughput and peak memory
// of an architecture on random data: the figures of docs/PERFORMANCE.md and
// of `eraserelu bench`, comparable with the PyTorch reference script.
package bench

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"github.com/eraserelu/eraserelu/graph/ops/cpu"
	"github.com/eraserelu/eraserelu/pipeline"
	"github.com/eraserelu/eraserelu/train"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Config is one measurement.
type Config struct {
	Arch          string
	Batch         int
	Steps, Warmup int
	// Erase is the EraseReLU proportion applied before compiling.
	Erase float64
	Dtype tensor.Dtype
	// Kernels, when not nil, is the kernel choice to compile with
	// (ops.DefaultKernels otherwise): for benchmarks of one against another.
	Kernels *ops.Kernels
}

// Result is what Run measured.
type Result struct {
	Arch       string  `json:"arch"`
	Batch      int     `json:"batch"`
	Params     int     `json:"params"`
	TrainImgS  float64 `json:"train_img_s"`
	EvalImgS   float64 `json:"eval_img_s"`
	StepMs     float64 `json:"step_ms"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	BuildMs    float64 `json:"build_ms"`
	BLAS       string  `json:"blas"`
	Conv       string  `json:"conv_kernels"`
}

// Session is a compiled architecture bound to one random batch, with its
// optimizer: the unit Run times and the go test benchmarks drive.
type Session struct {
	Graph   *graph.Graph
	Prog    *graph.Program
	Opt     *train.SGD
	BuildMs float64
}

// NewSession builds, erases and compiles the architecture, binds a random
// batch and makes an SGD optimizer (momentum 0.9, Nesterov, weight decay
// 1e-4, as the reference script).
func NewSession(cfg Config) (*Session, error) {
	if cfg.Batch < 1 {
		return nil, fmt.Errorf("bench: --batch must be >= 1, got %d", cfg.Batch)
	}
	if cfg.Dtype == (tensor.Dtype{}) {
		cfg.Dtype = tensor.Float32
	}
	start := time.Now()
	net := pipeline.Net{Arch: cfg.Arch, Batch: cfg.Batch, Dtype: cfg.Dtype, Seed: 1}
	if cfg.Erase > 0 {
		net.Erase = &erase.Options{Proportion: cfg.Erase}
	}
	if cfg.Kernels != nil {
		net.Compile = append(net.Compile, graph.WithKernels(*cfg.Kernels))
	}
	nw, err := pipeline.Compile(net)
	if err != nil {
		return nil, err
	}
	g, prog := nw.Graph, nw.Program
	build := time.Since(start)
	if err := bindRandom(g, cfg.Dtype); err != nil {
		prog.Close()
		return nil, err
	}
	opt, err := train.NewSGD(g.Params(), train.SGDOptions{Momentum: 0.9, Nesterov: true, WeightDecay: 1e-4})
	if err != nil {
		prog.Close()
		return nil, err
	}
	return &Session{Graph: g, Prog: prog, Opt: opt, BuildMs: build.Seconds() * 1000}, nil
}

// TrainStep is one forward and backward pass and one SGD update.
func (s *Session) TrainStep() error {
	if err := s.Prog.Train(); err != nil {
		return err
	}
	return s.Opt.Step(s.Prog, 0.1)
}

// EvalStep is one inference pass.
func (s *Session) EvalStep() error { return s.Prog.Infer() }

// Close releases the machines and the optimizer's workers.
func (s *Session) Close() {
	s.Opt.Close()
	s.Prog.Close()
}

// Run times cfg.Steps training steps (after cfg.Warmup untimed ones) and
// max(cfg.Steps/2, 2) inference passes on one fixed random batch.
func Run(cfg Config) (*Result, error) {
	if cfg.Steps < 1 {
		return nil, fmt.Errorf("bench: --steps must be >= 1, got %d", cfg.Steps)
	}
	s, err := NewSession(cfg)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	for i := 0; i < cfg.Warmup; i++ {
		if err := s.TrainStep(); err != nil {
			return nil, err
		}
	}
	t0 := time.Now()
	for i := 0; i < cfg.Steps; i++ {
		if err := s.TrainStep(); err != nil {
			return nil, err
		}
	}
	trainDur := time.Since(t0)
	if err := s.EvalStep(); err != nil {
		return nil, err
	}
	evalSteps := max(cfg.Steps/2, 2)
	t1 := time.Now()
	for i := 0; i < evalSteps; i++ {
		if err := s.EvalStep(); err != nil {
			return nil, err
		}
	}
	evalDur := time.Since(t1)
	rss, err := PeakRSSMiB()
	if err != nil {
		return nil, err
	}
	return &Result{
		Arch:       cfg.Arch,
		Batch:      cfg.Batch,
		Params:     s.Graph.ParamCount(),
		TrainImgS:  float64(cfg.Steps*cfg.Batch) / trainDur.Seconds(),
		EvalImgS:   float64(evalSteps*cfg.Batch) / evalDur.Seconds(),
		StepMs:     trainDur.Seconds() * 1000 / float64(cfg.Steps),
		PeakRSSMiB: rss,
		BuildMs:    s.BuildMs,
		BLAS:       cpu.BLASName,
		Conv:       ops.DefaultKernels().String(),
	}, nil
}

// bindRandom binds a standard-normal image batch to "x" and uniform labels to "y".
func bindRandom(g *graph.Graph, dt tensor.Dtype) error {
	x, ok := g.Input("x")
	if !ok {
		return fmt.Errorf("bench: graph has no input x")
	}
	y, ok := g.Input("y")
	if !ok {
		return fmt.Errorf("bench: graph has no input y")
	}
	rng := rand.New(rand.NewPCG(0, 0))
	xt := tensor.New(tensor.Of(dt), tensor.WithShape(x.Shape()...))
	switch d := xt.Data().(type) {
	case []float32:
		for i := range d {
			d[i] = float32(rng.NormFloat64())
		}
	case []float64:
		for i := range d {
			d[i] = rng.NormFloat64()
		}
	}
	classes := 10
	if l, ok := g.Output("logits"); ok {
		classes = l.Shape()[1]
	}
	labels := make([]int, y.Shape()[0])
	for i := range labels {
		labels[i] = rng.IntN(classes)
	}
	if err := gorgonia.Let(x, xt); err != nil {
		return fmt.Errorf("bench: bind x: %w", err)
	}
	if err := gorgonia.Let(y, tensor.New(tensor.WithShape(len(labels)), tensor.WithBacking(labels))); err != nil {
		return fmt.Errorf("bench: bind y: %w", err)
	}
	return nil
}

// CPUTime is the user and system CPU time this process has used so far.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PeakRSSMiB reads the process's peak resident set size (VmHWM) from /proc.
func PeakRSSMiB() (float64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("peak RSS: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("peak RSS: parse %q: %w", rest, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("peak RSS: no VmHWM line in /proc/self/status")
}
