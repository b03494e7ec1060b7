package train

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/graph"
	"gorgonia.org/tensor"
)

func checkpointNet(t *testing.T, seed uint64) (*graph.Graph, *SGD) {
	p := buildNet(t, netSpec{dtype: tensor.Float32, batch: 4, in: 3, out: 2, hidden: 5, noise: 0.1, bias: true, seed: seed})
	g := p.Graph()
	g.NewBuffer("bn/running_var", []int{5}, 1)
	opt, err := NewSGD(g.Params(), SGDOptions{Momentum: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(opt.Close)
	// Give the velocities and the RNG some state.
	for i, p := range g.Params() {
		v, _ := opt.Velocity(p.Name)
		for j := range v.Float32s() {
			v.Float32s()[j] = float32(i + j)
		}
	}
	RNGOps(g)[0].(*noiseOp).rng.Float64()
	opt.SetStarted(true)
	return g, opt
}

func TestCheckpointRoundTrip(t *testing.T) {
	g, opt := checkpointNet(t, 1)
	path := filepath.Join(t.TempDir(), "c.safetensors")
	cfg, _ := RecipeConfig("wrn")
	st := State{Epoch: 3, Batch: 2, Step: 77, Seed: 9, ConfigHash: cfg.Hash(), Config: cfg, LastLoss: 0.25,
		History: []EpochMetrics{{Epoch: 1, Step: 10, LR: 0.1, Train: Metrics{Loss: 1, Top1Err: 50, Top5Err: 10, Examples: 40}, Test: noMetrics()}},
		Running: Running{LossSum: 3.5, Weight: 8, Correct1: 5, Scored: 8, Examples: 8, Seconds: 1.5},
		Backend: map[string]string{"loss_scale": "1024", "loss_scale.good": "7"}}
	if err := SaveCheckpoint(path, g, opt, st); err != nil {
		t.Fatal(err)
	}
	wantParams := paramsBits(g)
	wantBuf := append([]float32(nil), g.Buffers()[0].Value.Float32s()...)
	v0, _ := opt.Velocity("w2")
	wantVel := append([]float32(nil), v0.Float32s()...)
	rng := RNGOps(g)[0].(*noiseOp)
	wantDraw := rng.rng.Float64()

	// A fresh net from another seed, loaded, must match.
	h, opt2 := checkpointNet(t, 2)
	got, err := LoadCheckpoint(path, h, opt2)
	if err != nil {
		t.Fatal(err)
	}
	if got.Epoch != 3 || got.Batch != 2 || got.Step != 77 || got.Seed != 9 || got.ConfigHash != st.ConfigHash ||
		got.LastLoss != 0.25 || got.Running != st.Running || len(got.History) != 1 || got.History[0].Train != st.History[0].Train ||
		got.Config.Hash() != cfg.Hash() || !maps.Equal(got.Backend, st.Backend) {
		t.Errorf("state %+v, want %+v", got, st)
	}
	for name, bits := range paramsBits(h) {
		for i := range bits {
			if bits[i] != wantParams[name][i] {
				t.Fatalf("param %s differs after load", name)
			}
		}
	}
	if b := h.Buffers()[0].Value.Float32s(); b[0] != wantBuf[0] {
		t.Error("buffer not restored")
	}
	if v, _ := opt2.Velocity("w2"); v.Float32s()[1] != wantVel[1] {
		t.Error("velocity not restored")
	}
	if !opt2.Started() {
		t.Error("optimizer start flag not restored")
	}
	if d := RNGOps(h)[0].(*noiseOp).rng.Float64(); d != wantDraw {
		t.Errorf("RNG not restored: draw %v, want %v", d, wantDraw)
	}
	// Weights only: no optimizer.
	if _, err := LoadCheckpoint(path, h, nil); err != nil {
		t.Errorf("weights-only load: %v", err)
	}
}

func TestCheckpointMismatches(t *testing.T) {
	g, opt := checkpointNet(t, 1)
	dir := t.TempDir()
	path := filepath.Join(dir, "c.safetensors")
	if err := SaveCheckpoint(path, g, opt, State{}); err != nil {
		t.Fatal(err)
	}
	st, err := ReadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	rewrite := func(name string, edit func(ts map[string]*tensor.Dense, meta map[string]string)) string {
		ts := map[string]*tensor.Dense{}
		meta := map[string]string{}
		for k, v := range st.Tensors {
			ts[k] = v
		}
		for k, v := range st.Metadata {
			meta[k] = v
		}
		edit(ts, meta)
		p := filepath.Join(dir, name)
		write, err := checksummed(ts, meta) // an edit the checksum vouches for
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteFileAtomic(p, write); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, want string
		edit       func(map[string]*tensor.Dense, map[string]string)
	}{
		{"missing", `tensor "w1" is missing`, func(ts map[string]*tensor.Dense, _ map[string]string) { delete(ts, "w1") }},
		{"missing-velocity", `tensor "optim.velocity.b" is missing`, func(ts map[string]*tensor.Dense, _ map[string]string) { delete(ts, "optim.velocity.b") }},
		{"missing-buffer", `tensor "bn/running_var" is missing`, func(ts map[string]*tensor.Dense, _ map[string]string) { delete(ts, "bn/running_var") }},
		{"shape", `tensor "w2" has shape (2, 5)`, func(ts map[string]*tensor.Dense, _ map[string]string) {
			ts["w2"] = tensor.New(tensor.WithShape(2, 5), tensor.WithBacking(make([]float32, 10)))
		}},
		{"dtype", `tensor "b" has dtype float64`, func(ts map[string]*tensor.Dense, _ map[string]string) {
			ts["b"] = tensor.New(tensor.WithShape(2), tensor.WithBacking(make([]float64, 2)))
		}},
		{"extra", `"stray" are not in the graph`, func(ts map[string]*tensor.Dense, _ map[string]string) {
			ts["stray"] = tensor.New(tensor.WithShape(1), tensor.WithBacking([]float32{1}))
		}},
		{"rng", "no RNG state for op 0", func(_ map[string]*tensor.Dense, m map[string]string) { delete(m, "rng.0") }},
		{"format", "format", func(_ map[string]*tensor.Dense, m map[string]string) { m["format"] = "other" }},
		{"epoch", "metadata epoch", func(_ map[string]*tensor.Dense, m map[string]string) { m["epoch"] = "three" }},
	}
	before := paramsBits(g)
	for _, c := range cases {
		p := rewrite(c.name+".safetensors", c.edit)
		_, err := LoadCheckpoint(p, g, opt)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v, want one naming %s and %q", c.name, err, p, c.want)
		}
	}
	after := paramsBits(g)
	for name := range before {
		if before[name][0] != after[name][0] {
			t.Errorf("a failed load changed parameter %s", name)
		}
	}
	// A corrupt file: the error names it.
	b, _ := os.ReadFile(path)
	b[20] = '#'
	bad := filepath.Join(dir, "corrupt.safetensors")
	os.WriteFile(bad, b, 0o644)
	if _, err := LoadCheckpoint(bad, g, opt); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("corrupt file: %v", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.txt")
	if err := WriteBytesAtomic(path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk on fire")
	err := WriteFileAtomic(path, func(w io.Writer) error {
		w.Write(bytes.Repeat([]byte("x"), 3<<20)) // past the buffer: really written
		return boom
	})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("the failed write changed the file to %d bytes", len(b))
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if err := WriteBytesAtomic(path, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new" {
		t.Errorf("content %q", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
	if err := WriteBytesAtomic(filepath.Join(dir, "no/such/dir/f"), nil); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

// TestRNGOpsFindsOpsInGraphOrder also checks ops without RNG are skipped.
func TestRNGOps(t *testing.T) {
	p := buildNet(t, netSpec{dtype: tensor.Float64, batch: 2, in: 2, out: 2, hidden: 2, seed: 1})
	if n := len(RNGOps(p.Graph())); n != 0 {
		t.Errorf("%d RNG ops in a net without noise", n)
	}
	g := graph.New(tensor.Float64, 1)
	x := g.NewInput("x", tensor.Float64, 2, 2)
	a, _ := newNoise(g, x, 1)
	newNoise(g, a, 1)
	if n := len(RNGOps(g)); n != 2 {
		t.Errorf("%d RNG ops, want 2", n)
	}
}
