package train

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"gorgonia.org/tensor"
)

// TestChecksumDetectsEveryFlipAndTruncation flips every bit pattern class
// (lowest bit, highest bit, all bits) of every byte of a checkpoint, and
// cuts it at every length: each load must fail, as corrupt, leaving the
// graph untouched.
func TestChecksumDetectsEveryFlipAndTruncation(t *testing.T) {
	g, opt := checkpointNet(t, 1)
	path := filepath.Join(t.TempDir(), "c.safetensors")
	if err := SaveCheckpoint(path, g, opt, State{Epoch: 1, Config: smallConfig(2), Identity: map[string]string{"arch": "test"}}); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyChecksum(good); err != nil {
		t.Fatalf("a fresh checkpoint does not verify: %v", err)
	}
	h, opt2 := checkpointNet(t, 2)
	before := paramsBits(h)
	bad := filepath.Join(t.TempDir(), "bad.safetensors")
	tried, detected := 0, 0
	// Most cases go through decodeCheckpoint, LoadCheckpoint's own check
	// on the bytes it read; every 97th through a file and LoadCheckpoint.
	try := func(b []byte, what string) {
		tried++
		var err error
		if tried%97 == 0 {
			if err := os.WriteFile(bad, b, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = LoadCheckpoint(bad, h, opt2)
		} else {
			_, err = decodeCheckpoint(bad, b)
		}
		var corrupt *CorruptCheckpointError
		if errors.As(err, &corrupt) && strings.Contains(err.Error(), bad) {
			detected++
		} else {
			t.Errorf("%s: load gave %v, want a CorruptCheckpointError naming the file", what, err)
		}
	}
	for i := range good {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			b := append([]byte(nil), good...)
			b[i] ^= mask
			try(b, fmt.Sprintf("byte %d ^ %#x", i, mask))
		}
	}
	for n := 0; n < len(good); n++ {
		try(good[:n], fmt.Sprintf("truncated to %d bytes", n))
	}
	try(append(append([]byte(nil), good...), 0), "one byte appended")
	if !sameBits(before, paramsBits(h)) {
		t.Error("a failed load changed the graph")
	}
	t.Logf("%d bytes: %d of %d corruptions detected", len(good), detected, tried)
}

func consoleLogger(w io.Writer) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(w)
	return l
}

// TestOldCheckpointRefused: a version-1 checkpoint (no checksum) cannot be
// verified, and the error says so.
func TestOldCheckpointRefused(t *testing.T) {
	g, opt := checkpointNet(t, 1)
	ts, err := CheckpointTensors(g, opt)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "old.safetensors")
	if err := WriteSafetensors(path, ts, map[string]string{"format": "eraserelu-checkpoint/1", "epoch": "1"}); err != nil {
		t.Fatal(err)
	}
	_, err = LoadCheckpoint(path, g, opt)
	var corrupt *CorruptCheckpointError
	if !errors.As(err, &corrupt) || !strings.Contains(err.Error(), "no checksum") || !strings.Contains(err.Error(), path) {
		t.Errorf("old checkpoint: %v", err)
	}
}

// TestResumeFallsBackFromCorruptCheckpoint is the byte-flip scenario: a
// run stopped after its second epoch, one byte of last.safetensors
// flipped; the resume warns, takes prev.safetensors and ends bit-identical
// to the uninterrupted run. With every checkpoint corrupt it stops, saying
// what to delete.
func TestResumeFallsBackFromCorruptCheckpoint(t *testing.T) {
	spec := netSpec{dtype: tensor.Float32, batch: 16, in: 5, out: 4, hidden: 8, bias: true}
	cfg := smallConfig(4)
	straight := newFixture(t, spec, 96, true)
	want, _, err := runTrainer(t, straight, cfg, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, damage := range []string{"flip", "truncate", "missing"} {
		dir := t.TempDir()
		two := cfg
		two.Epochs = 2
		if _, _, err := runTrainer(t, newFixture(t, spec, 96, true), two, Options{Dir: dir}); err != nil {
			t.Fatal(err)
		}
		last := filepath.Join(dir, CheckpointDir, LastCheckpoint)
		b, _ := os.ReadFile(last)
		switch damage {
		case "flip":
			b[len(b)/2] ^= 0x10
			os.WriteFile(last, b, 0o644)
		case "truncate":
			os.WriteFile(last, b[:len(b)-3], 0o644)
		case "missing": // a crash between the rotation's two renames
			os.Remove(last)
		}
		var log strings.Builder
		second := newFixture(t, spec, 96, true)
		got, _, err := runTrainer(t, second, cfg, Options{Dir: dir, Resume: true, Logger: consoleLogger(&log)})
		if err != nil {
			t.Fatalf("%s: resume: %v", damage, err)
		}
		if damage != "missing" && (!strings.Contains(log.String(), "failed verification") || !strings.Contains(log.String(), last)) {
			t.Errorf("%s: no warning naming %s: %s", damage, last, log.String())
		}
		if !strings.Contains(log.String(), PrevCheckpoint) {
			t.Errorf("%s: the resume does not say it took %s: %s", damage, PrevCheckpoint, log.String())
		}
		if !sameBits(paramsBits(straight.prog.Graph()), paramsBits(second.prog.Graph())) || !sameHistory(want.History, got.History) {
			t.Errorf("%s: the resumed run differs from the uninterrupted one", damage)
		}
	}

	// Nothing good: an error naming each file and what to delete.
	dir := t.TempDir()
	two := cfg
	two.Epochs = 2
	if _, _, err := runTrainer(t, newFixture(t, spec, 96, true), two, Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	for _, p := range CheckpointCandidates(dir) {
		b, _ := os.ReadFile(p)
		b[40] ^= 1
		os.WriteFile(p, b, 0o644)
	}
	_, _, err = runTrainer(t, newFixture(t, spec, 96, true), cfg, Options{Dir: dir, Resume: true})
	if err == nil || !strings.Contains(err.Error(), "delete the directory "+filepath.Join(dir, CheckpointDir)) ||
		!strings.Contains(err.Error(), LastCheckpoint) || !strings.Contains(err.Error(), PrevCheckpoint) {
		t.Errorf("all checkpoints corrupt: %v", err)
	}
}

// TestCheckpointRotation: after each epoch prev.safetensors holds the
// epoch before last.safetensors; the starting point is checkpoint 0; no
// temporary file is left.
func TestCheckpointRotation(t *testing.T) {
	spec := netSpec{dtype: tensor.Float64, batch: 16, in: 4, out: 3}
	dir := t.TempDir()
	var epochs [][2]int
	opts := Options{Dir: dir}
	f := newFixture(t, spec, 64, true)
	opts.OnEpoch = func(EpochMetrics) {
		var e [2]int
		for i, name := range []string{LastCheckpoint, PrevCheckpoint} {
			st, err := LoadCheckpoint(filepath.Join(dir, CheckpointDir, name), f.prog.Graph(), nil)
			if err != nil {
				t.Fatal(err)
			}
			e[i] = st.Epoch
		}
		epochs = append(epochs, e)
	}
	// Loading into the training graph mid-run is harmless here: it puts
	// back the values just written.
	if _, _, err := runTrainer(t, f, smallConfig(3), opts); err != nil {
		t.Fatal(err)
	}
	if len(epochs) != 3 || epochs[0] != [2]int{1, 0} || epochs[1] != [2]int{2, 1} || epochs[2] != [2]int{3, 2} {
		t.Errorf("(last, prev) epochs after each epoch: %v, want [1 0] [2 1] [3 2]", epochs)
	}
	left, _ := filepath.Glob(filepath.Join(dir, CheckpointDir, ".*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestResumeExtendsOrRefuses: more epochs continue a finished run to the
// same result as a run that long from the start; fewer epochs, another
// setting or another identity are refused, each differing field named.
func TestResumeExtendsOrRefuses(t *testing.T) {
	spec := netSpec{dtype: tensor.Float64, batch: 16, in: 4, out: 3, hidden: 6}
	id := map[string]string{"arch": "mlp", "erase": "0.5"}
	straight := newFixture(t, spec, 64, true)
	want, _, err := runTrainer(t, straight, smallConfig(5), Options{Dir: t.TempDir(), Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, _, err := runTrainer(t, newFixture(t, spec, 64, true), smallConfig(2), Options{Dir: dir, Identity: id}); err != nil {
		t.Fatal(err)
	}
	refused := []struct {
		name string
		cfg  Config
		id   map[string]string
		want []string
	}{
		{"fewer epochs", smallConfig(1), id, []string{"epochs: 2 vs 1"}},
		{"other lr and gamma", func() Config { c := smallConfig(5); c.LR, c.Gamma = 0.2, 0.5; return c }(), id, []string{"lr: 0.1 vs 0.2", "gamma: 0.1 vs 0.5"}},
		{"other erase", smallConfig(5), map[string]string{"arch": "mlp", "erase": "1"}, []string{"erase: 0.5 vs 1"}},
		{"no identity", smallConfig(2), nil, []string{"arch: mlp vs (none)"}},
	}
	for _, c := range refused {
		_, _, err := runTrainer(t, newFixture(t, spec, 64, true), c.cfg, Options{Dir: dir, Resume: true, Identity: c.id})
		if err == nil {
			t.Errorf("%s: resumed", c.name)
			continue
		}
		for _, w := range append(c.want, "new --out") {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", c.name, err, w)
			}
		}
	}
	// checkpoint_every changes nothing computed: allowed.
	more := smallConfig(5)
	more.CheckpointEvery = 1
	second := newFixture(t, spec, 64, true)
	got, _, err := runTrainer(t, second, more, Options{Dir: dir, Resume: true, Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	if got.Epochs != 5 || !sameHistory(want.History, got.History) || !sameBits(paramsBits(straight.prog.Graph()), paramsBits(second.prog.Graph())) {
		t.Errorf("extended run: %d epochs, differs from the 5-epoch run", got.Epochs)
	}
	if got.ConfigHash != want.ConfigHash {
		t.Errorf("extended run's config hash %s, the 5-epoch run's %s", got.ConfigHash, want.ConfigHash)
	}
	if c, err := ReadRunConfig(dir); err != nil || c.Epochs != 5 {
		t.Errorf("config.json after the extension: %+v %v", c, err)
	}
	if _, err := os.Stat(filepath.Join(dir, CheckpointDir, "epoch-0005.safetensors")); err != nil {
		t.Errorf("checkpoint_every 1 after the extension: %v", err)
	}
}
