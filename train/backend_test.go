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
}

func (r *recorder) Name() string { return "recorder" }
func (r *recorder) Load() error  { r.calls = append(r.calls, "load"); return nil }
func (r *recorder) Sync() error  { r.calls = append(r.calls, "sync"); return nil }
func (r *recorder) Close() error { r.calls = append(r.calls, "close"); return nil }
func (r *recorder) Train(x, y *tensor.Dense, lr float64) (Pass, error) {
	r.calls = append(r.calls, "train")
	return r.cpuBackend.Train(x, y, lr)
}
func (r *recorder) Infer(x, y *tensor.Dense) (Pass, error) {
	r.calls = append(r.calls, "infer")
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
// results exactly, loads once before the first step, passes the trainer's
// bound input tensors, and syncs before every checkpoint and at the end;
// Close closes it.
func TestBackendSeam(t *testing.T) {
	spec := netSpec{dtype: tensor.Float32, batch: 16, in: 5, out: 6, hidden: 8, bias: true}
	cfg := smallConfig(2)
	want, _, err := runTrainer(t, newFixture(t, spec, 64, true), cfg, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var rec *recorder
	var inputs []*tensor.Dense
	f := newFixture(t, spec, 64, true)
	opts := Options{Dir: t.TempDir(), Backend: func(prog *graph.Program, c Config, opt *SGD) (Backend, error) {
		if !reflect.DeepEqual(c, cfg) {
			t.Errorf("factory got config %+v, want %+v", c, cfg)
		}
		rec = &recorder{cpuBackend: newCPUBackend(prog, opt)}
		for _, name := range []string{"x", "y"} {
			n, _ := prog.Graph().Input(name)
			inputs = append(inputs, n.Value().(*tensor.Dense))
		}
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
	if tr.x != inputs[0] || tr.y != inputs[1] {
		t.Error("the trainer's batch tensors are not the graph's inputs")
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
