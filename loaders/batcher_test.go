package loaders

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"gorgonia.org/tensor"
)

// epochBatches runs one epoch and returns copies of every batch.
func epochBatches(t *testing.T, b *Batcher, e int, dt tensor.Dtype) (xs [][]float64, ys [][]int, ns []int) {
	t.Helper()
	x, y := b.NewTensors(dt)
	it := b.Epoch(e)
	defer it.Close()
	for {
		n, ok, err := it.Next(x, y)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return
		}
		var row []float64
		if dt == tensor.Float32 {
			for _, v := range x.Float32s() {
				row = append(row, float64(v))
			}
		} else {
			row = slices.Clone(x.Float64s())
		}
		xs, ys, ns = append(xs, row), append(ys, slices.Clone(y.Ints())), append(ns, n)
	}
}

func mustBatcher(t *testing.T, ds Dataset, cfg BatcherConfig) *Batcher {
	t.Helper()
	b, err := NewBatcher(ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBatcherDeterministic(t *testing.T) {
	ds := memData(1000, 3, 8, 8, 10)
	norm, _ := Preset("cifar10", true)
	base := BatcherConfig{Batch: 64, Shuffle: true, Seed: 11, Normalize: norm, Augment: PadCropFlip{Pad: 2, Flip: true}}
	var ref [][]float64
	var refY [][]int
	for _, wp := range [][2]int{{1, 1}, {4, 0}, {3, 2}, {8, 16}} {
		cfg := base
		cfg.Workers, cfg.Prefetch = wp[0], wp[1]
		b := mustBatcher(t, ds, cfg)
		xs, ys, _ := epochBatches(t, b, 0, tensor.Float32)
		if ref == nil {
			ref, refY = xs, ys
			continue
		}
		if !slices.EqualFunc(xs, ref, slices.Equal) || !slices.EqualFunc(ys, refY, slices.Equal) {
			t.Fatalf("workers %d prefetch %d: batches differ from 1 worker", wp[0], wp[1])
		}
	}
	b := mustBatcher(t, ds, base)
	_, ys1, _ := epochBatches(t, b, 1, tensor.Float32)
	if slices.EqualFunc(ys1, refY, slices.Equal) {
		t.Fatal("epochs 0 and 1 have the same order")
	}
	// A resumed run: epoch 1 of a fresh Batcher after nothing else.
	b2 := mustBatcher(t, ds, base)
	_, ys1b, _ := epochBatches(t, b2, 1, tensor.Float32)
	if !slices.EqualFunc(ys1, ys1b, slices.Equal) {
		t.Fatal("epoch 1 depends on history")
	}
	cfg := base
	cfg.Seed = 12
	_, ysSeed, _ := epochBatches(t, mustBatcher(t, ds, cfg), 0, tensor.Float32)
	if slices.EqualFunc(ysSeed, refY, slices.Equal) {
		t.Fatal("seeds 11 and 12 give the same order")
	}
}

// TestBatcherContents checks coverage, order, values, the short last batch
// and DropLast, for float32 and float64.
func TestBatcherContents(t *testing.T) {
	const n = 300
	ds := memData(n, 2, 3, 4, n) // class i = image i, so y tells the image
	norm := Normalize{Mean: []float64{0.5, 0.1}, Std: []float64{0.25, 2}}
	tb, _ := norm.table(2)
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		for _, shuffle := range []bool{false, true} {
			b := mustBatcher(t, ds, BatcherConfig{Batch: 64, Shuffle: shuffle, Seed: 1, Workers: 3, Normalize: norm})
			if b.Batches() != 5 {
				t.Fatalf("Batches %d", b.Batches())
			}
			xs, ys, ns := epochBatches(t, b, 2, dt)
			if !slices.Equal(ns, []int{64, 64, 64, 64, 44}) {
				t.Fatalf("batch sizes %v", ns)
			}
			var seen []int
			img := make([]uint8, 24)
			for k := range xs {
				for r := range ns[k] {
					i := ys[k][r]
					seen = append(seen, i)
					ds.Image(i, img)
					for j, u := range img {
						want := tb[j/12][u]
						if dt == tensor.Float32 {
							want = float64(float32(want))
						}
						if xs[k][r*24+j] != want {
							t.Fatalf("batch %d row %d value %d: %v, want %v", k, r, j, xs[k][r*24+j], want)
						}
					}
				}
				for j := ns[k] * 24; j < len(xs[k]); j++ {
					if xs[k][j] != 0 {
						t.Fatalf("batch %d: padding row value %v", k, xs[k][j])
					}
				}
				for r := ns[k]; r < 64; r++ {
					if ys[k][r] != 0 {
						t.Fatalf("batch %d: padding label %d", k, ys[k][r])
					}
				}
			}
			if slices.IsSorted(seen) == shuffle {
				t.Fatalf("shuffle=%v but order sorted=%v", shuffle, slices.IsSorted(seen))
			}
			slices.Sort(seen)
			for i, v := range seen {
				if v != i {
					t.Fatalf("epoch does not visit every image once: %v", seen)
				}
			}
		}
	}
	b := mustBatcher(t, ds, BatcherConfig{Batch: 64, DropLast: true, Shuffle: true})
	_, _, ns := epochBatches(t, b, 0, tensor.Float32)
	if !slices.Equal(ns, []int{64, 64, 64, 64}) || b.Batches() != 4 {
		t.Fatalf("DropLast batch sizes %v", ns)
	}
}

func TestBatcherOutShapeAndTensors(t *testing.T) {
	ds := memData(10, 3, 16, 16, 2)
	b := mustBatcher(t, ds, BatcherConfig{Batch: 4, Augment: CenterCrop{Size: 8}})
	if c, h, w := b.OutShape(); c != 3 || h != 8 || w != 8 {
		t.Fatalf("OutShape %d %d %d", c, h, w)
	}
	x, y := b.NewTensors(tensor.Float64)
	it := b.Epoch(0)
	defer it.Close()
	// Wrong tensors: an error, and the iterator stays where it was.
	bad := []struct {
		x, y *tensor.Dense
		want string
	}{
		{tensor.New(tensor.WithShape(4, 3, 16, 16), tensor.Of(tensor.Float32)), y, "shape"},
		{tensor.New(tensor.WithShape(4, 3, 8, 8), tensor.Of(tensor.Int)), y, "dtype"},
		{x, tensor.New(tensor.WithShape(4), tensor.Of(tensor.Float64)), "dtype"},
		{x, tensor.New(tensor.WithShape(5), tensor.Of(tensor.Int)), "shape"},
		{nil, y, "nil"},
	}
	for _, c := range bad {
		if _, ok, err := it.Next(c.x, c.y); ok || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("bad tensors: ok=%v err=%v, want %q", ok, err, c.want)
		}
	}
	total := 0
	for {
		n, ok, err := it.Next(x, y)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		total += n
	}
	if total != 10 {
		t.Fatalf("%d images after bad calls, want 10", total)
	}
	if _, ok, err := it.Next(x, y); ok || err != nil {
		t.Fatal("Next after the end")
	}
}

func TestNewBatcherErrors(t *testing.T) {
	ds := memData(10, 3, 4, 4, 2)
	cases := []struct {
		ds  Dataset
		cfg BatcherConfig
	}{
		{nil, BatcherConfig{Batch: 1}},
		{memData(0, 3, 4, 4, 2), BatcherConfig{Batch: 1}},
		{ds, BatcherConfig{}},
		{ds, BatcherConfig{Batch: 2, Workers: -1}},
		{ds, BatcherConfig{Batch: 20, DropLast: true}},
		{ds, BatcherConfig{Batch: 2, Normalize: Normalize{Mean: []float64{1, 2}}}},
		{ds, BatcherConfig{Batch: 2, Augment: CenterCrop{}}},
	}
	for i, c := range cases {
		if _, err := NewBatcher(c.ds, c.cfg); err == nil {
			t.Errorf("case %d: no error", i)
		}
	}
}

// failing fails on one image.
type failing struct {
	Dataset
	bad int
}

func (f failing) Image(i int, dst []uint8) error {
	if i == f.bad {
		return fmt.Errorf("image %d is broken", i)
	}
	return f.Dataset.Image(i, dst)
}

func TestBatcherImageError(t *testing.T) {
	ds := failing{memData(500, 1, 4, 4, 3), 237}
	for _, aug := range []Augment{nil, PadCropFlip{Pad: 1}} {
		b := mustBatcher(t, ds, BatcherConfig{Batch: 16, Workers: 4, Augment: aug})
		x, y := b.NewTensors(tensor.Float32)
		it := b.Epoch(0)
		batches := 0
		var err error
		for {
			var ok bool
			_, ok, err = it.Next(x, y)
			if !ok {
				break
			}
			batches++
		}
		if err == nil || !strings.Contains(err.Error(), "image 237 is broken") || batches != 237/16 {
			t.Fatalf("after %d batches: %v", batches, err)
		}
		if _, _, err2 := it.Next(x, y); !errors.Is(err2, err) {
			t.Fatalf("error not sticky: %v", err2)
		}
		it.Close()
	}
}

func TestBatcherCloseStopsWorkers(t *testing.T) {
	before := runtime.NumGoroutine()
	ds := memData(5000, 3, 8, 8, 10)
	b := mustBatcher(t, ds, BatcherConfig{Batch: 10, Workers: 4, Prefetch: 3, Shuffle: true})
	x, y := b.NewTensors(tensor.Float32)
	for e := range 3 {
		it := b.Epoch(e) // closes the previous one
		if _, ok, err := it.Next(x, y); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	b.Epoch(3).Close()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		t.Fatalf("%d goroutines left running (before: %d)", g, before)
	}
}

// TestBatcherNoAlloc checks that Next does not allocate (the workers, which
// run during the measurement, do not either for an in-memory data set).
func TestBatcherNoAlloc(t *testing.T) {
	ds := memData(128*80, 3, 32, 32, 10)
	norm, aug := Preset("cifar10", true)
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		b := mustBatcher(t, ds, BatcherConfig{Batch: 128, Shuffle: true, Seed: 3, Workers: 2, Normalize: norm, Augment: aug})
		x, y := b.NewTensors(dt)
		it := b.Epoch(0)
		if _, ok, err := it.Next(x, y); !ok || err != nil {
			t.Fatal(ok, err)
		}
		allocs := testing.AllocsPerRun(60, func() {
			if _, ok, err := it.Next(x, y); !ok || err != nil {
				t.Fatal(ok, err)
			}
		})
		it.Close()
		if allocs != 0 {
			t.Errorf("%v: %.2f allocations per Next", dt, allocs)
		}
	}
}
