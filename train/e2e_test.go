package train

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// This file trains small networks made of the project's own ops:
// fully-connected layers (Gorgonia's Mul), ops.BatchNorm with its running
// statistics as graph buffers, ops.ReLU, ops.Dropout and
// ops.SoftmaxCrossEntropy, whose op is the Scorer.

type mlpSpec struct {
	batch, in, hidden, out int
	dropout                float64
	seed                   uint64
}

// buildMLP builds x -> W1 -> BatchNorm -> ReLU [-> Dropout] -> W2 -> logits,
// loss = SoftmaxCrossEntropy(logits, y).
func buildMLP(t testing.TB, s mlpSpec) *graph.Program {
	t.Helper()
	must := func(n *gorgonia.Node, err error) *gorgonia.Node {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	g := graph.New(tensor.Float32, s.seed)
	x := g.NewInput("x", tensor.Float32, s.batch, s.in)
	y := g.NewInput("y", tensor.Int, s.batch)
	w1 := g.NewParam("fc1/w", []int{s.in, s.hidden}, graph.HeNormal(), false)
	h := must(gorgonia.Mul(x, w1))
	gamma := g.NewParam("bn1/gamma", []int{s.hidden}, func(_ *rand.Rand, _ []int, t *tensor.Dense) { fillDense(t, 1) }, true)
	beta := g.NewParam("bn1/beta", []int{s.hidden}, func(_ *rand.Rand, _ []int, t *tensor.Dense) { fillDense(t, 0) }, true)
	rm := g.NewBuffer("bn1/running_mean", []int{s.hidden}, 0)
	rv := g.NewBuffer("bn1/running_var", []int{s.hidden}, 1)
	h = must(ops.BatchNorm(h, gamma, beta, ops.BatchNormConfig{Mode: g.Mode(), RunningMean: rm, RunningVar: rv}))
	h = must(ops.ReLU(h))
	if s.dropout > 0 {
		h = must(ops.Dropout(h, s.dropout, g.Mode(), g.Rand().Uint64()))
	}
	w2 := g.NewParam("fc2/w", []int{s.hidden, s.out}, graph.HeNormal(), false)
	logits := must(gorgonia.Mul(h, w2))
	loss, _, err := ops.SoftmaxCrossEntropy(logits, y)
	if err != nil {
		t.Fatal(err)
	}
	g.SetOutput("logits", logits)
	g.SetOutput("loss", loss)
	p, err := graph.Compile(g, "loss")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func fillDense(t *tensor.Dense, v float64) {
	if t.Dtype() == tensor.Float32 {
		for i := range t.Float32s() {
			t.Float32s()[i] = float32(v)
		}
		return
	}
	for i := range t.Float64s() {
		t.Float64s()[i] = v
	}
}

func mlpFixture(t *testing.T, s mlpSpec) fixture {
	return fixture{
		prog:  buildMLP(t, s),
		train: FromEpochs(newBlobs(320, s.in, s.out, 21, s.batch, true)),
		test:  FromEpochs(newBlobs(96, s.in, s.out, 21, s.batch, true)),
	}
}

func TestEndToEndWithProjectOps(t *testing.T) {
	spec := mlpSpec{batch: 32, in: 10, hidden: 32, out: 10, dropout: 0.1, seed: 4}
	cfg := Config{Recipe: "e2e", BatchSize: 32, Epochs: 5, LR: 0.05, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4,
		Milestones: []int{4}, MilestoneUnit: "epoch", Gamma: 0.2, Seed: 4}
	f := mlpFixture(t, spec)
	rv, _ := bufferNamed(f.prog.Graph(), "bn1/running_var")
	before := append([]float32(nil), rv.Float32s()...)
	res, tr, err := runTrainer(t, f, cfg, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if be, ok := tr.Backend().(*cpuBackend); !ok || be.scorer == nil {
		t.Fatal("ops.SoftmaxCrossEntropy was not used as the Scorer")
	}
	first, last := res.History[0], res.Final
	if !(last.Train.Loss < first.Train.Loss/2) || !(last.Test.Top1Err < first.Train.Top1Err/2) || math.IsNaN(last.Test.Top5Err) {
		t.Errorf("did not learn:\nfirst %+v\nlast  %+v", first, last)
	}
	if last.Test.Examples != 96 || last.Train.Examples != 320 {
		t.Errorf("examples %+v", last)
	}
	if rv.Float32s()[0] == before[0] {
		t.Error("batch norm's running variance did not change in training")
	}
}

func bufferNamed(g *graph.Graph, name string) (*tensor.Dense, bool) {
	for _, b := range g.Buffers() {
		if b.Name == name {
			return b.Value, true
		}
	}
	return nil, false
}

// TestEndToEndResume: batch-norm statistics travel through the checkpoint,
// so a resumed run is bitwise the uninterrupted one, with dropout too (its
// mask counter is checkpointed through RNGStater).
func TestEndToEndResume(t *testing.T) {
	for _, dropout := range []float64{0, 0.2} {
		spec := mlpSpec{batch: 32, in: 8, hidden: 16, out: 5, dropout: dropout, seed: 9}
		cfg := Config{BatchSize: 32, Epochs: 3, LR: 0.05, Momentum: 0.9, WeightDecay: 1e-4, Seed: 9}
		straight := mlpFixture(t, spec)
		want, _, err := runTrainer(t, straight, cfg, Options{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		first := mlpFixture(t, spec)
		tr, err := New(first.prog, cfg, first.train, first.test, Options{Dir: dir,
			OnStep: func(step int, _ float64) {
				if step == 13 {
					cancel()
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Run(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted run: %v", err)
		}
		tr.Close()
		second := mlpFixture(t, spec)
		got, _, err := runTrainer(t, second, cfg, Options{Dir: dir, Resume: true})
		if err != nil {
			t.Fatal(err)
		}
		if !sameBits(paramsBits(straight.prog.Graph()), paramsBits(second.prog.Graph())) {
			t.Errorf("dropout %v: weights differ after resume", dropout)
		}
		a, _ := bufferNamed(straight.prog.Graph(), "bn1/running_mean")
		b, _ := bufferNamed(second.prog.Graph(), "bn1/running_mean")
		for i := range a.Float32s() {
			if a.Float32s()[i] != b.Float32s()[i] {
				t.Errorf("dropout %v: running mean differs after resume", dropout)
				break
			}
		}
		if !sameHistory(want.History, got.History) {
			t.Errorf("dropout %v: metrics differ:\n got %+v\nwant %+v", dropout, stripTiming(got.History), stripTiming(want.History))
		}
	}
}

// TestEndToEndShortBatch: a final batch shorter than the batch size is
// padded with label -1, which the cross-entropy op ignores: every real
// example is counted once.
func TestEndToEndShortBatch(t *testing.T) {
	spec := mlpSpec{batch: 32, in: 8, hidden: 16, out: 5, seed: 2}
	f := fixture{prog: buildMLP(t, spec), train: FromEpochs(newBlobs(80, 8, 5, 3, 32, false))}
	res, _, err := runTrainer(t, f, Config{BatchSize: 32, Epochs: 1, LR: 0.01, Seed: 2}, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Final.Train.Examples != 80 {
		t.Errorf("examples %d, want 80", res.Final.Train.Examples)
	}
}
