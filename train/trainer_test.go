package train

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/sirupsen/logrus"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func smallConfig(epochs int) Config {
	return Config{Recipe: "test", BatchSize: 16, Epochs: epochs, LR: 0.1, Momentum: 0.9, WeightDecay: 1e-4,
		Milestones: []int{3}, MilestoneUnit: "epoch", Gamma: 0.1, Seed: 1}
}

// fixture is a network and data built from a seed, as a fresh process would.
type fixture struct {
	prog        *graph.Program
	train, test Data
}

func newFixture(t *testing.T, spec netSpec, n int, dropLast bool) fixture {
	spec.seed = 11
	p := buildNet(t, spec)
	return fixture{
		prog:  p,
		train: FromEpochs(newBlobs(n, spec.in, spec.out, 5, spec.batch, dropLast)),
		test:  FromEpochs(newBlobs(50, spec.in, spec.out, 5, spec.batch, false)),
	}
}

func runTrainer(t *testing.T, f fixture, cfg Config, opts Options) (Result, *Trainer, error) {
	t.Helper()
	tr, err := New(f.prog, cfg, f.train, f.test, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	res, err := tr.Run(context.Background())
	return res, tr, err
}

func TestTrainerLearnsAndWritesRunDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	cfg := smallConfig(4)
	cfg.LR, cfg.CheckpointEvery = 0.02, 2
	f := newFixture(t, netSpec{dtype: tensor.Float64, batch: 16, in: 5, out: 6, hidden: 8, bias: true}, 200, false)
	var console bytes.Buffer
	logger := logrus.New()
	logger.SetOutput(&console)
	epochs := 0
	res, _, err := runTrainer(t, f, cfg, Options{Dir: dir, Logger: logger, Progress: &console, OnEpoch: func(EpochMetrics) { epochs++ }})
	if err != nil {
		t.Fatal(err)
	}
	if epochs != 4 || res.Epochs != 4 || res.Steps != 4*13 || len(res.History) != 4 {
		t.Fatalf("epochs %d, result %+v", epochs, res)
	}
	first, last := res.History[0], res.Final
	if !(last.Train.Loss < first.Train.Loss/2) || !(last.Test.Top1Err < 30) || last.Test.Top1Err > first.Train.Top1Err {
		t.Errorf("did not learn: first %+v, last %+v", first, last)
	}
	if last.Train.Examples != 200 || last.Test.Examples != 50 || last.LR != tenth(0.02) {
		t.Errorf("last epoch %+v", last)
	}
	if math.IsNaN(res.BestTestTop1Err) || res.BestEpoch == 0 {
		t.Errorf("best %v at %d", res.BestTestTop1Err, res.BestEpoch)
	}

	var c Config
	b, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil || json.Unmarshal(b, &c) != nil || c.Seed != 1 || c.Commit == "" || c.LR != 0.02 {
		t.Errorf("config.json %s: %v", b, err)
	}
	b, _ = os.ReadFile(filepath.Join(dir, MetricsFile))
	rows, err := ParseMetricsCSV(b)
	if err != nil || len(rows) != 4 || rows[3].Test.Top1Err != last.Test.Top1Err {
		t.Errorf("metrics.csv %s: %v", b, err)
	}
	var r Result
	b, _ = os.ReadFile(filepath.Join(dir, ResultsFile))
	if err := json.Unmarshal(b, &r); err != nil || r.Final.Test.Top1Err != last.Test.Top1Err || r.Seed != 1 {
		t.Errorf("results.json %s: %v", b, err)
	}
	lf, _ := os.Open(filepath.Join(dir, LogFile))
	defer lf.Close()
	lines, msgs := 0, map[string]int{}
	for sc := bufio.NewScanner(lf); sc.Scan(); lines++ {
		var entry map[string]any
		if err := json.Unmarshal(sc.Bytes(), &entry); err != nil {
			t.Fatalf("train.log line %q: %v", sc.Text(), err)
		}
		msgs[entry["msg"].(string)]++
	}
	if msgs["run started"] != 1 || msgs["epoch done"] != 4 || msgs["run finished"] != 1 || msgs["progress"] == 0 {
		t.Errorf("train.log messages %v", msgs)
	}
	for _, name := range []string{LossPlotFile, ErrorPlotFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, name := range []string{LastCheckpoint, "epoch-0002.safetensors", "epoch-0004.safetensors"} {
		if _, err := os.Stat(filepath.Join(dir, CheckpointDir, name)); err != nil {
			t.Errorf("checkpoint %s: %v", name, err)
		}
	}
	if !strings.Contains(console.String(), "epoch done") || strings.Contains(console.String(), "\r") {
		t.Errorf("console (not a terminal) got %q", console.String())
	}

	// A second fresh run in the same directory is refused; nothing is lost.
	g := newFixture(t, netSpec{dtype: tensor.Float64, batch: 16, in: 5, out: 6, hidden: 8, bias: true}, 200, false)
	tr, err := New(g.prog, cfg, g.train, g.test, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "already holds a run") {
		t.Errorf("second run: %v", err)
	}
	if b2, _ := os.ReadFile(filepath.Join(dir, MetricsFile)); len(b2) == 0 {
		t.Error("metrics.csv lost")
	}
}

// tenth is lr*0.1 rounded as the schedule rounds it (a constant 0.1*0.1
// would be folded exactly).
func tenth(lr float64) float64 { return lr * 0.1 }

func stripTiming(h []EpochMetrics) []EpochMetrics {
	out := append([]EpochMetrics(nil), h...)
	for i := range out {
		out[i].Seconds, out[i].ImagesPerSec = 0, 0
	}
	return out
}

func sameHistory(a, b []EpochMetrics) bool {
	ja, _ := json.Marshal(stripTiming(a))
	jb, _ := json.Marshal(stripTiming(b))
	return bytes.Equal(ja, jb)
}

func velocityBits(t *Trainer) map[string][]uint64 {
	out := map[string][]uint64{}
	for _, p := range t.opt.Params() {
		v, _ := t.opt.Velocity(p.Name)
		for _, x := range v.Float32s() {
			out[p.Name] = append(out[p.Name], uint64(math.Float32bits(x)))
		}
	}
	return out
}

func sameBits(a, b map[string][]uint64) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// TestResumeIsBitwiseExact trains K epochs straight and compares with runs
// interrupted after an epoch and in the middle of one, then resumed by a
// fresh trainer on a freshly built network, as a new process would: the
// weights, velocities, op RNG state and every metric must be identical.
func TestResumeIsBitwiseExact(t *testing.T) {
	spec := netSpec{dtype: tensor.Float32, batch: 16, in: 6, out: 7, hidden: 12, noise: 0.05, bias: true}
	cfg := smallConfig(5)
	cfg.Nesterov, cfg.WarmupIters, cfg.WarmupLR = true, 5, 0.01
	const n = 150 // 9 full batches and one of 6: the short batch is padded

	straight := newFixture(t, spec, n, false)
	want, wantTr, err := runTrainer(t, straight, cfg, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}

	interrupt := map[string]func(cancel context.CancelFunc) Options{
		"after epoch 2": func(cancel context.CancelFunc) Options {
			return Options{OnEpoch: func(e EpochMetrics) {
				if e.Epoch == 2 {
					cancel()
				}
			}}
		},
		// Stopped after an epoch's last batch, before its evaluation: the
		// resumed epoch has no step left and must still record its rate.
		"after epoch 1's last batch": func(cancel context.CancelFunc) Options {
			return Options{OnStep: func(step int, _ float64) {
				if step == 10 {
					cancel()
				}
			}}
		},
		"mid-epoch step 23": func(cancel context.CancelFunc) Options {
			return Options{OnStep: func(step int, _ float64) {
				if step == 23 {
					cancel()
				}
			}}
		},
	}
	for name, stop := range interrupt {
		dir := t.TempDir()
		first := newFixture(t, spec, n, false)
		ctx, cancel := context.WithCancel(context.Background())
		opts := stop(cancel)
		opts.Dir = dir
		tr, err := New(first.prog, cfg, first.train, first.test, opts)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tr.Run(ctx)
		tr.Close()
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "checkpoint saved") {
			t.Fatalf("%s: interrupted run returned %v", name, err)
		}

		second := newFixture(t, spec, n, false)
		again, err := ReadRunConfig(dir)
		if err != nil || again.Hash() != cfg.Hash() {
			t.Fatalf("%s: config.json reads back as %+v (%v)", name, again, err)
		}
		got, gotTr, err := runTrainer(t, second, again, Options{Dir: dir, Resume: true})
		if err != nil {
			t.Fatalf("%s: resume: %v", name, err)
		}
		if !sameBits(paramsBits(straight.prog.Graph()), paramsBits(second.prog.Graph())) {
			t.Errorf("%s: final weights differ from the uninterrupted run", name)
		}
		if !sameBits(velocityBits(wantTr), velocityBits(gotTr)) {
			t.Errorf("%s: final velocities differ", name)
		}
		if !sameHistory(want.History, got.History) || got.Steps != want.Steps {
			t.Errorf("%s: metrics differ:\n got %+v\nwant %+v", name, stripTiming(got.History), stripTiming(want.History))
		}
		a, _ := RNGOps(straight.prog.Graph())[0].RNGState()
		b, _ := RNGOps(second.prog.Graph())[0].RNGState()
		if !bytes.Equal(a, b) {
			t.Errorf("%s: op RNG state differs", name)
		}
		csv, _ := os.ReadFile(filepath.Join(dir, MetricsFile))
		rows, _ := ParseMetricsCSV(csv)
		if len(rows) != 5 {
			t.Errorf("%s: metrics.csv has %d rows", name, len(rows))
		}
	}
}

func TestResumeRefusesOtherConfig(t *testing.T) {
	spec := netSpec{dtype: tensor.Float64, batch: 16, in: 4, out: 3}
	dir := t.TempDir()
	cfg := smallConfig(1)
	if _, _, err := runTrainer(t, newFixture(t, spec, 64, true), cfg, Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	cfg.WeightDecay = 5e-4
	_, _, err := runTrainer(t, newFixture(t, spec, 64, true), cfg, Options{Dir: dir, Resume: true})
	if err == nil || !strings.Contains(err.Error(), "weight_decay: 0.0001 vs 0.0005") || !strings.Contains(err.Error(), "new --out") {
		t.Errorf("resume with another config: %v", err)
	}
	_, _, err = runTrainer(t, newFixture(t, spec, 64, true), cfg, Options{Dir: t.TempDir(), Resume: true})
	if err == nil || !strings.Contains(err.Error(), "no checkpoint") {
		t.Errorf("resume without a checkpoint: %v", err)
	}
	// Resuming a finished run just reports it again.
	cfg.WeightDecay = 1e-4
	res, _, err := runTrainer(t, newFixture(t, spec, 64, true), cfg, Options{Dir: dir, Resume: true})
	if err != nil || res.Epochs != 1 {
		t.Errorf("resume of a finished run: %+v, %v", res, err)
	}
}

// TestDivergenceStops: a learning rate that explodes after two epochs gives
// a clear error and keeps the checkpoint of epoch 2.
func TestDivergenceStops(t *testing.T) {
	spec := netSpec{dtype: tensor.Float32, batch: 16, in: 5, out: 4, hidden: 8}
	dir := t.TempDir()
	cfg := smallConfig(5)
	cfg.Milestones, cfg.Gamma = []int{2}, 1e30
	_, _, err := runTrainer(t, newFixture(t, spec, 96, true), cfg, Options{Dir: dir})
	var d *DivergedError
	if !errors.As(err, &d) {
		t.Fatalf("error %v, want a DivergedError", err)
	}
	if d.Epoch != 3 || d.Step < 12 || d.LastStep != d.Step-1 || math.IsNaN(d.LastLoss) || math.IsInf(d.LastLoss, 0) ||
		d.CheckpointEpoch != 2 || d.Checkpoint != filepath.Join(dir, CheckpointDir, LastCheckpoint) {
		t.Errorf("diverged %+v", d)
	}
	for _, want := range []string{"loss is", "at step", "epoch 3", "last finite loss", "is kept"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	g := newFixture(t, spec, 96, true).prog.Graph()
	st, err := LoadCheckpoint(d.Checkpoint, g, nil)
	if err != nil || st.Epoch != 2 || st.Step != 12 {
		t.Fatalf("kept checkpoint: %+v %v", st, err)
	}
	for name, bits := range paramsBits(g) {
		for _, b := range bits {
			if x := math.Float32frombits(uint32(b)); math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("checkpointed parameter %s is not finite", name)
			}
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, LogFile))
	if !strings.Contains(string(log), "training diverged") {
		t.Error("train.log does not record the divergence")
	}
}

func TestIterationsStopMidEpoch(t *testing.T) {
	spec := netSpec{dtype: tensor.Float64, batch: 16, in: 4, out: 3}
	cfg := smallConfig(0)
	cfg.Epochs, cfg.Iterations = 0, 10
	cfg.Milestones, cfg.MilestoneUnit = []int{6}, "iteration"
	res, _, err := runTrainer(t, newFixture(t, spec, 64, true), cfg, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 10 || res.Epochs != 3 || res.Final.Train.Examples != 2*16 || res.Final.LR != tenth(0.1) || res.History[0].LR != 0.1 {
		t.Errorf("result %+v", res)
	}
}

func TestCancelBeforeTheFirstStep(t *testing.T) {
	spec := netSpec{dtype: tensor.Float64, batch: 16, in: 4, out: 3}
	dir := t.TempDir()
	f := newFixture(t, spec, 64, true)
	tr, err := New(f.prog, smallConfig(2), f.train, f.test, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tr.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v", err)
	}
	st, err := LoadCheckpoint(filepath.Join(dir, CheckpointDir, LastCheckpoint), f.prog.Graph(), nil)
	if err != nil || st.Step != 0 || st.Epoch != 0 {
		t.Errorf("checkpoint %+v %v", st, err)
	}
}

// TestRegressionWithBuiltins trains a linear model with a squared-error
// loss made of Gorgonia built-ins only: no labels input, no Scorer, so only
// the loss is reported.
func TestRegressionWithBuiltins(t *testing.T) {
	const batch, dim = 8, 4
	g := graph.New(tensor.Float64, 3)
	x := g.NewInput("x", tensor.Float64, batch, dim)
	w := g.NewParam("w", []int{dim, 1}, graph.HeNormal(), false)
	teacher := gorgonia.NewConstant(tensor.New(tensor.WithShape(dim, 1), tensor.WithBacking([]float64{1, -2, 0.5, 3})))
	pred := gorgonia.Must(gorgonia.Mul(x, w))
	target := gorgonia.Must(gorgonia.Mul(x, teacher))
	loss := gorgonia.Must(gorgonia.Mean(gorgonia.Must(gorgonia.Square(gorgonia.Must(gorgonia.Sub(pred, target))))))
	g.SetOutput("logits", pred)
	g.SetOutput("loss", loss)
	p, err := graph.Compile(g, "loss")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cfg := Config{BatchSize: batch, Epochs: 6, LR: 0.05, Momentum: 0.5, Seed: 3}
	dir := t.TempDir()
	data := FromEpochs(newBlobs(64, dim, 2, 3, batch, true))
	tr, err := New(p, cfg, data, data, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	res, err := tr.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !(res.Final.Train.Loss < res.History[0].Train.Loss/10) || !(res.Final.Test.Loss < 0.1) {
		t.Errorf("loss did not fall: %+v", stripTiming(res.History))
	}
	if !math.IsNaN(res.Final.Test.Top1Err) {
		t.Errorf("errors without a Scorer: %+v", res.Final)
	}
	csv, _ := os.ReadFile(filepath.Join(dir, MetricsFile))
	if !strings.Contains(string(csv), ",,") {
		t.Errorf("metrics.csv should leave the errors empty:\n%s", csv)
	}
	if _, err := os.Stat(filepath.Join(dir, ErrorPlotFile)); err == nil {
		t.Error("an error plot was drawn without errors")
	}
}

func TestNewChecksTheGraph(t *testing.T) {
	cfg := smallConfig(1)
	data := FromEpochs(newBlobs(32, 4, 3, 1, 16, true))
	p := buildNet(t, netSpec{dtype: tensor.Float64, batch: 8, in: 4, out: 3, seed: 1})
	if _, err := New(p, cfg, data, nil, Options{Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "batch_size 16") {
		t.Errorf("wrong batch: %v", err)
	}
	p = buildNet(t, netSpec{dtype: tensor.Float64, batch: 16, in: 4, out: 3, seed: 1})
	if _, err := New(p, cfg, data, nil, Options{}); err == nil || !strings.Contains(err.Error(), "Dir") {
		t.Errorf("no dir: %v", err)
	}
	bad := cfg
	bad.LR = -1
	if _, err := New(p, bad, data, nil, Options{Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "lr must be > 0, got -1") {
		t.Errorf("bad config: %v", err)
	}
	g := graph.New(tensor.Float64, 1)
	xin := g.NewInput("images", tensor.Float64, 16, 4)
	wt := g.NewParam("w", []int{4, 1}, graph.HeNormal(), false)
	g.SetOutput("loss", gorgonia.Must(gorgonia.Mean(gorgonia.Must(gorgonia.Mul(xin, wt)))))
	q, err := graph.Compile(g, "loss")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, err := New(q, cfg, data, nil, Options{Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), `no input "x"`) {
		t.Errorf("no x: %v", err)
	}
}

// TestFromEpochs: a source whose Epoch returns a concrete iterator type
// adapts without type arguments, and its Size passes through.
func TestFromEpochs(t *testing.T) {
	b := newBlobs(40, 2, 2, 1, 16, false)
	d := FromEpochs(b)
	if sizeOf(d) != 40 {
		t.Errorf("size %d", sizeOf(d))
	}
	x := tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(16, 2))
	y := tensor.New(tensor.Of(tensor.Int), tensor.WithShape(16))
	it := d.Epoch(0)
	total := 0
	for {
		n, ok, err := it.Next(x, y)
		if err != nil || !ok {
			break
		}
		total += n
	}
	if total != 40 {
		t.Errorf("%d examples", total)
	}
	if sizeOf(WithSize(DataFunc(func(int) Batches { return b.Epoch(0) }), 7)) != 7 {
		t.Error("WithSize")
	}
}

// TestPaddingMarksShortBatches: rows past n get label -1 and zero inputs.
func TestPaddingMarksShortBatches(t *testing.T) {
	p := buildNet(t, netSpec{dtype: tensor.Float32, batch: 4, in: 2, out: 2, seed: 1})
	tr, err := New(p, Config{BatchSize: 4, Epochs: 1, LR: 0.1}, FromEpochs(newBlobs(6, 2, 2, 1, 4, false)), nil, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	it := newBlobs(6, 2, 2, 1, 4, false).Epoch(0)
	tr.next(it)
	n, ok, err := tr.next(it)
	if n != 2 || !ok || err != nil {
		t.Fatalf("second batch %d %v %v", n, ok, err)
	}
	if ys := tr.y.Ints(); ys[2] != -1 || ys[3] != -1 || ys[1] < 0 {
		t.Errorf("labels %v", ys)
	}
	if xs := tr.x.Float32s(); xs[4] != 0 || xs[7] != 0 {
		t.Errorf("inputs %v", xs)
	}
}

func TestProgressNeedsATerminal(t *testing.T) {
	var buf bytes.Buffer
	if newProgress(&buf, 100, 10).active() || newProgress(nil, 100, 10).active() {
		t.Error("a progress bar on a non-terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a file is a terminal")
	}
	var p *progress // inactive: every method is safe
	p.startEpoch(0, 1, 0)
	p.add(3)
	p.clear()
	p.endEpoch()
	p.finish()
}
