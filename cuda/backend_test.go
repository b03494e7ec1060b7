package cuda

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"github.com/eraserelu/eraserelu/layers"
	"github.com/eraserelu/eraserelu/train"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// blobs is a tiny image classification set: class k is a pattern of its own
// plus noise, image i of an epoch a function of (seed, epoch, i) only.
type blobs struct {
	n, batch, c, h, w, classes int
	seed                       uint64
	shuffle                    bool
}

func (b blobs) Size() int { return b.n }

func (b blobs) Epoch(e int) train.Batches {
	order := make([]int, b.n)
	for i := range order {
		order[i] = i
	}
	if b.shuffle {
		rand.New(rand.NewPCG(b.seed, uint64(e))).Shuffle(b.n, func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	return &blobIter{b: b, order: order}
}

type blobIter struct {
	b     blobs
	order []int
	at    int
}

func (it *blobIter) Next(x, y *tensor.Dense) (int, bool, error) {
	b := it.b
	if it.at >= b.n {
		return 0, false, nil
	}
	n := min(b.batch, b.n-it.at)
	xs, ys := x.Float32s(), y.Ints()
	row := b.c * b.h * b.w
	for r := 0; r < n; r++ {
		i := it.order[it.at+r]
		rng := rand.New(rand.NewPCG(b.seed+7, uint64(i)))
		k := i % b.classes
		ys[r] = k
		for j := 0; j < row; j++ {
			v := 0.3 * rng.NormFloat64()
			if (j*7+k*5)%b.classes < 3 {
				v += 1
			}
			xs[r*row+j] = float32(v)
		}
	}
	it.at += n
	return n, true, nil
}

func (it *blobIter) Close() {}

// tinyNets: ResNet-8; with stochastic depth; MLP-3 (dropout 0.1, batch norm on rows).
var tinyNets = []arch.Config{{Arch: "resnet-8"}, {Arch: "resnet-8", StochasticDepth: true}, {Arch: "mlp-3"}}

// tinyNet compiles cfg on 3x8x8 images, batch 8, 10 classes, from seed 3.
func tinyNet(t testing.TB, cfg arch.Config) *graph.Program {
	t.Helper()
	cfg.Batch, cfg.InputShape, cfg.Classes, cfg.Dtype, cfg.Seed = 8, [3]int{3, 8, 8}, 10, tensor.Float32, 3
	g, err := arch.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := graph.Compile(g, "loss")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func tinyConfig(epochs int) train.Config {
	return train.Config{Recipe: "tiny", BatchSize: 8, Epochs: epochs, LR: 0.05, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4,
		Milestones: []int{2}, MilestoneUnit: "epoch", Gamma: 0.1, Seed: 3}
}

// tinyData: 32 training images (4 steps an epoch), 12 test images (a full
// batch and one of 4 labelled rows).
func tinyData() (trainData, testData train.Data) {
	return blobs{n: 32, batch: 8, c: 3, h: 8, w: 8, classes: 10, seed: 1, shuffle: true},
		blobs{n: 12, batch: 8, c: 3, h: 8, w: 8, classes: 10, seed: 2}
}

var refBackend = NewBackend(NewRefExecutor, Lowering{Precision: FP32})

type tinyRun struct {
	res    train.Result
	losses []float64
	params map[string][]float32
	rng    map[string]string // the random ops' draw counters
	err    error
}

func runTiny(t *testing.T, net arch.Config, dir string, cfg train.Config, be train.BackendFactory, resume bool, stop func(step int) bool) tinyRun {
	t.Helper()
	p := tinyNet(t, net)
	tr, te := tinyData()
	var out tinyRun
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := train.Options{Dir: dir, Backend: be, Resume: resume, OnStep: func(step int, loss float64) {
		out.losses = append(out.losses, loss)
		if stop != nil && stop(step) {
			cancel()
		}
	}}
	trainer, err := train.New(p, cfg, tr, te, opts)
	if err != nil {
		t.Fatal(err)
	}
	out.res, out.err = trainer.Run(ctx)
	if err := trainer.Close(); err != nil {
		t.Fatal(err)
	}
	out.params = map[string][]float32{}
	for _, prm := range p.Graph().Params() {
		out.params[prm.Name] = append([]float32(nil), prm.Node.Value().Data().([]float32)...)
	}
	for _, b := range p.Graph().Buffers() {
		out.params[b.Name] = append([]float32(nil), b.Value.Float32s()...)
	}
	out.rng = map[string]string{}
	for i, op := range train.RNGOps(p.Graph()) {
		st, err := op.RNGState()
		if err != nil {
			t.Fatal(err)
		}
		out.rng[fmt.Sprintf("%d %v", i, op)] = fmt.Sprint(st)
	}
	return out
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(math.Abs(b), 1e-3) }

// TestBackendMatchesCPUTrainer trains three small networks (ResNet-8,
// ResNet-8 with stochastic depth, MLP-3 with dropout) for three epochs (a
// learning-rate milestone, Nesterov momentum, weight decay) with the
// trainer's CPU backend and with the device path on the reference
// interpreter: every step's loss, every epoch's train and test metrics
// (the test set ends in a short batch), the final weights and running
// statistics, read back through Sync, agree to float32 tolerance, and the
// random ops' draw counters are the CPU's (the device drew the same masks).
func TestBackendMatchesCPUTrainer(t *testing.T) {
	for _, net := range tinyNets {
		t.Run(netName(net), func(t *testing.T) { matchCPU(t, net) })
	}
}

func netName(c arch.Config) string {
	if c.StochasticDepth {
		return c.Arch + "-stochastic-depth"
	}
	return c.Arch
}

func matchCPU(t *testing.T, net arch.Config) {
	cfg := tinyConfig(3)
	cpu := runTiny(t, net, t.TempDir(), cfg, nil, false, nil)
	dev := runTiny(t, net, t.TempDir(), cfg, refBackend, false, nil)
	if cpu.err != nil || dev.err != nil {
		t.Fatalf("cpu: %v, device: %v", cpu.err, dev.err)
	}
	if len(dev.losses) != 12 || len(cpu.losses) != 12 {
		t.Fatalf("%d and %d steps, want 12", len(cpu.losses), len(dev.losses))
	}
	const tol = 1e-4
	worstLoss := 0.0
	for i := range cpu.losses {
		worstLoss = max(worstLoss, math.Abs(dev.losses[i]-cpu.losses[i])/cpu.losses[i])
		if !near(dev.losses[i], cpu.losses[i], tol) {
			t.Errorf("step %d: loss %.7g on the device path, %.7g on the CPU", i, dev.losses[i], cpu.losses[i])
		}
	}
	for e, c := range cpu.res.History {
		d := dev.res.History[e]
		for _, m := range [][2]train.Metrics{{d.Train, c.Train}, {d.Test, c.Test}} {
			if !near(m[0].Loss, m[1].Loss, tol) || m[0].Top1Err != m[1].Top1Err || m[0].Top5Err != m[1].Top5Err || m[0].Examples != m[1].Examples {
				t.Errorf("epoch %d: device %+v, cpu %+v", e+1, m[0], m[1])
			}
		}
	}
	if last := cpu.res.Final.Test; last.Examples != 12 {
		t.Errorf("test examples %d, want 12", last.Examples)
	}
	worst := 0.0
	for name, want := range cpu.params {
		d := RelDiff(dev.params[name], want)
		worst = max(worst, d)
		if d > 1e-3 {
			t.Errorf("%s after training: relative difference %.3g", name, d)
		}
	}
	if !reflect.DeepEqual(dev.rng, cpu.rng) {
		t.Errorf("draw counters after training: device path %v, cpu %v", dev.rng, cpu.rng)
	}
	if net.StochasticDepth || net.Arch == "mlp-3" {
		if len(cpu.rng) == 0 {
			t.Error("no random ops")
		}
	}
	t.Logf("losses %.5f ... %.5f, worst relative difference %.3g; worst final weight or statistic relative difference %.3g; %d random ops",
		cpu.losses[0], cpu.losses[len(cpu.losses)-1], worstLoss, worst, len(cpu.rng))
}

// TestBackendResumeIsExact interrupts a device-path run mid-epoch and after
// an epoch and resumes it: the checkpoints (written after Sync) restore
// the weights, velocities and statistics on the device (Load), so the
// result is bit for bit the uninterrupted run's. A run started on the
// device path also resumes on the CPU.
func TestBackendResumeIsExact(t *testing.T) {
	for _, net := range tinyNets {
		t.Run(netName(net), func(t *testing.T) { resumeExact(t, net) })
	}
}

func resumeExact(t *testing.T, net arch.Config) {
	cfg := tinyConfig(3)
	whole := resumeExactOn(t, net, cfg, refBackend)
	dir := t.TempDir()
	if r := runTiny(t, net, dir, cfg, refBackend, false, func(step int) bool { return step == 4 }); !errors.Is(r.err, context.Canceled) {
		t.Fatal(r.err)
	}
	onCPU := runTiny(t, net, dir, cfg, nil, true, nil)
	if onCPU.err != nil {
		t.Fatal(onCPU.err)
	}
	if d, w := onCPU.res.Final.Test.Loss, whole.res.Final.Test.Loss; !near(d, w, 1e-3) {
		t.Errorf("resumed on the CPU: final test loss %v, device path %v", d, w)
	}
}

// resumeExactOn runs net uninterrupted on backend be, then interrupted at
// steps 6 (mid-epoch) and 8 (an epoch's end) and resumed: the results,
// weights and draw counters must be the uninterrupted run's bit for bit.
// It returns the uninterrupted run.
func resumeExactOn(t *testing.T, net arch.Config, cfg train.Config, be train.BackendFactory) tinyRun {
	t.Helper()
	whole := runTiny(t, net, t.TempDir(), cfg, be, false, nil)
	if whole.err != nil {
		t.Fatal(whole.err)
	}
	for _, at := range []int{6, 8} {
		dir := t.TempDir()
		first := runTiny(t, net, dir, cfg, be, false, func(step int) bool { return step == at })
		if first.err == nil || !errors.Is(first.err, context.Canceled) {
			t.Fatalf("interrupted at step %d: %v", at, first.err)
		}
		rest := runTiny(t, net, dir, cfg, be, true, nil)
		if rest.err != nil {
			t.Fatal(rest.err)
		}
		if !reflect.DeepEqual(strip(rest.res.History), strip(whole.res.History)) {
			t.Errorf("resumed at step %d:\n%+v\nuninterrupted:\n%+v", at, strip(rest.res.History), strip(whole.res.History))
		}
		for name, want := range whole.params {
			if !reflect.DeepEqual(rest.params[name], want) {
				t.Errorf("resumed at step %d: %s differs from the uninterrupted run's", at, name)
			}
		}
		if !reflect.DeepEqual(rest.rng, whole.rng) {
			t.Errorf("resumed at step %d: draw counters %v, uninterrupted %v", at, rest.rng, whole.rng)
		}
	}
	return whole
}

func strip(h []train.EpochMetrics) []train.EpochMetrics {
	out := append([]train.EpochMetrics(nil), h...)
	for i := range out {
		out[i].Seconds, out[i].ImagesPerSec = 0, 0
	}
	return out
}

// TestBackendRefusals: graphs the device path cannot run fail in New with
// the reason: float64, and an op without a lowering (Gorgonia's own tanh).
func TestBackendRefusals(t *testing.T) {
	tr, te := tinyData()
	f64, err := arch.Build(arch.Config{Arch: "resnet-8", Batch: 8, InputShape: [3]int{3, 8, 8}, Classes: 10, Dtype: tensor.Float64})
	if err != nil {
		t.Fatal(err)
	}
	tanh := graph.New(tensor.Float32, 1)
	x := tanh.NewInput("x", tensor.Float32, 8, 3, 8, 8)
	y := tanh.NewInput("y", tensor.Int, 8)
	h, err := ops.Flatten(x)
	if err == nil {
		h, err = layers.Dense(tanh, h, 10, layers.Name("fc"))
	}
	if err == nil {
		h, err = gorgonia.Tanh(h)
	}
	var loss *gorgonia.Node
	if err == nil {
		loss, _, err = ops.SoftmaxCrossEntropy(h, y)
	}
	if err != nil {
		t.Fatal(err)
	}
	tanh.SetOutput("logits", h)
	tanh.SetOutput("loss", loss)
	for _, tc := range []struct {
		name string
		g    *graph.Graph
		want string
	}{{"float64", f64, "only float32"}, {"tanh", tanh, "no lowering for op tanh"}} {
		p, err := graph.Compile(tc.g, "loss")
		if err != nil {
			t.Fatal(err)
		}
		_, err = train.New(p, tinyConfig(1), tr, te, train.Options{Dir: filepath.Join(t.TempDir(), "run"), Backend: refBackend})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
		p.Close()
	}
}
