package train

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/graph"
	"gorgonia.org/tensor"
)

// recorder is a backend that runs the CPU backend and records the calls
// the trainer makes, as a device backend would see them.
type recorder struct {
	*cpuBackend
	calls []string
	// batches are the distinct (x, y) tensors the passes were given.
	batches map[[2]*tensor.Dense]bool
}

func (r *recorder) Name() string { return "recorder" }
func (r *recorder) Load() error  { r.calls = append(r.calls, "load"); return nil }
func (r *recorder) Sync() error  { r.calls = append(r.calls, "sync"); return nil }
func (r *recorder) Close() error { r.calls = append(r.calls, "close"); return nil }
func (r *recorder) Train(x, y *tensor.Dense, lr float64) (Pass, error) {
	r.calls = append(r.calls, "train")
	r.batches[[2]*tensor.Dense{x, y}] = true
	return r.cpuBackend.Train(x, y, lr)
}
func (r *recorder) Infer(x, y *tensor.Dense) (Pass, error) {
	r.calls = append(r.calls, "infer")
	r.batches[[2]*tensor.Dense{x, y}] = true
	return r.cpuBackend.Infer(x, y)
}

// compact runs of one call: train train infer -> train*2 infer.
func compact(calls []string) string {
	var out []string
	for i := 0; i < len(calls); {
		j := i
		for j < len(calls) && calls[j] == calls[i] {
			j++
		}
		if j-i > 1 {
			out = append(out, calls[i]+"*"+strconv.Itoa(j-i))
		} else {
			out = append(out, calls[i])
		}
		i = j
	}
	return strings.Join(out, " ")
}

// TestBackendSeam: a run through a backend gives the default CPU run's
// results exactly, loads once before the first step, passes every batch in
// the trainer's two batch tensors (and binds nothing to the graph itself),
// and syncs before every checkpoint and at the end; Close closes it.
func TestBackendSeam(t *testing.T) {
	spec := netSpec{dtype: tensor.Float32, batch: 16, in: 5, out: 6, hidden: 8, bias: true}
	cfg := smallConfig(2)
	want, _, err := runTrainer(t, newFixture(t, spec, 64, true), cfg, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var rec *recorder
	f := newFixture(t, spec, 64, true)
	opts := Options{Dir: t.TempDir(), Backend: func(prog *graph.Program, c Config, opt *SGD) (Backend, error) {
		if !reflect.DeepEqual(c, cfg) {
			t.Errorf("factory got config %+v, want %+v", c, cfg)
		}
		for _, name := range []string{"x", "y"} {
			if n, _ := prog.Graph().Input(name); n.Value() != nil {
				t.Errorf("the trainer bound input %s itself", name)
			}
		}
		rec = &recorder{cpuBackend: newCPUBackend(prog, opt), batches: map[[2]*tensor.Dense]bool{}}
		return rec, nil
	}}
	tr, err := New(f.prog, cfg, f.train, f.test, opts)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Backend() != rec {
		t.Fatal("the trainer does not use the factory's backend")
	}
	got, err := tr.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.batches) != 1 || !rec.batches[[2]*tensor.Dense{tr.x, tr.y}] {
		t.Errorf("the passes got %d pairs of batch tensors, want the trainer's one", len(rec.batches))
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	// 64 examples, batch 16: 4 steps an epoch; 50 test examples: 4 batches.
	if c, w := compact(rec.calls), "load train*4 infer*4 sync train*4 infer*4 sync*2 close"; c != w {
		t.Errorf("calls %s, want %s", c, w)
	}
	if !reflect.DeepEqual(stripTiming(got.History), stripTiming(want.History)) {
		t.Errorf("history through the backend\n%+v\nCPU\n%+v", got.History, want.History)
	}
}

// failing is a backend whose passes fail.
type failing struct{ *cpuBackend }

func (failing) Train(*tensor.Dense, *tensor.Dense, float64) (Pass, error) {
	return Pass{}, errors.New("device lost")
}

// TestBackendErrors: a factory's error fails New; a pass's error names the step.
func TestBackendErrors(t *testing.T) {
	spec := netSpec{dtype: tensor.Float32, batch: 16, in: 5, out: 6, hidden: 8}
	f := newFixture(t, spec, 64, true)
	_, err := New(f.prog, smallConfig(1), f.train, f.test, Options{Dir: t.TempDir(),
		Backend: func(*graph.Program, Config, *SGD) (Backend, error) { return nil, errors.New("no GPU") }})
	if err == nil || !strings.Contains(err.Error(), "no GPU") {
		t.Errorf("factory error: %v", err)
	}
	_, _, err = runTrainer(t, f, smallConfig(1), Options{Dir: t.TempDir(),
		Backend: func(*graph.Program, Config, *SGD) (Backend, error) { return failing{&cpuBackend{}}, nil }})
	if err == nil || !strings.Contains(err.Error(), "step 0 (epoch 1, batch 1): device lost") {
		t.Errorf("pass error: %v", err)
	}
}

// TestCPUBackendReadsItsBatch: the CPU backend's passes read the batch they
// are given, whichever tensors hold it (the contract every backend keeps),
// and staging the same tensors again allocates nothing.
func TestCPUBackendReadsItsBatch(t *testing.T) {
	spec := netSpec{dtype: tensor.Float64, batch: 4, in: 3, out: 5, hidden: 6, seed: 3}
	prog := buildNet(t, spec)
	opt, err := NewSGD(prog.Graph().Params(), SGDOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Close()
	be := newCPUBackend(prog, opt)
	batch := func(scale float64) (*tensor.Dense, *tensor.Dense) {
		x := tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(spec.batch, spec.in))
		for i, d := 0, x.Float64s(); i < len(d); i++ {
			d[i] = scale * float64(i%7-3)
		}
		y := tensor.New(tensor.WithShape(spec.batch), tensor.WithBacking([]int{0, 1, 2, 3}))
		return x, y
	}
	xa, ya := batch(1)
	xb, yb := batch(-2)
	a, err := be.Infer(xa, ya)
	if err != nil {
		t.Fatal(err)
	}
	b, err := be.Infer(xb, yb)
	if err != nil {
		t.Fatal(err)
	}
	// A copy of batch a in other tensors gives a's loss again.
	xc, yc := batch(1)
	c, err := be.Infer(xc, yc)
	if err != nil {
		t.Fatal(err)
	}
	if a.Loss == b.Loss || c != a {
		t.Errorf("inference losses: batch a %v, batch b %v, a copy of a %v", a, b, c)
	}
	// One training step on a copy of batch b, then inference on b: the
	// step trained on b (its loss is b's inference loss before the step).
	xd, yd := batch(-2)
	d, err := be.Train(xd, yd, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if d.Loss != b.Loss {
		t.Errorf("training loss %v on batch b, want its inference loss %v (no dropout or batch norm)", d.Loss, b.Loss)
	}
	after, err := be.Infer(xb, yb)
	if err != nil {
		t.Fatal(err)
	}
	if !(after.Loss < b.Loss) {
		t.Errorf("loss on the batch trained on: %v before the step, %v after", b.Loss, after.Loss)
	}
	if allocs := testing.AllocsPerRun(10, func() {
		if err := be.stage(xb, yb); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("staging the bound batch again allocates %v times", allocs)
	}
	wrong := tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(spec.batch+1, spec.in))
	if _, err := be.Train(wrong, yb, 0.1); err == nil || !strings.Contains(err.Error(), "batch x") {
		t.Errorf("a batch of the wrong shape: %v", err)
	}
}
