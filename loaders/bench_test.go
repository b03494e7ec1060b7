package loaders

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"gorgonia.org/tensor"
)

// BenchmarkCIFARPipeline measures the input pipeline for CIFAR-10 training
// (pad-4 crop + flip, per-channel normalisation, shuffled batches of 128
// into a float32 tensor) in images per second. It uses the real JPEG copy
// from ../shared/datasets when present, else synthetic images:
//
//   - preloaded: images decoded once, outside the timed loop (how
//     Open("cifar10-jpeg") serves them);
//   - decode: each image decoded from its JPEG bytes on every use (real data
//     only).
func BenchmarkCIFARPipeline(b *testing.B) {
	var pre, lazy Dataset
	source := "synthetic"
	p := filepath.Join("..", "..", "shared", "datasets", "cifar10-jpeg.tar.gz")
	if _, err := os.Stat(p); err == nil {
		var err error
		if pre, err = Open("cifar10-jpeg", p, true); err != nil {
			b.Fatal(err)
		}
		if lazy, err = ImageFolder(p, "train"); err != nil {
			b.Fatal(err)
		}
		source = "cifar10-jpeg"
	} else {
		pre = memData(50000, 3, 32, 32, 10)
	}
	b.Logf("data: %s, %d images", source, pre.Len())
	run := func(b *testing.B, ds Dataset) {
		norm, aug := Preset("cifar10", true)
		bt, err := NewBatcher(ds, BatcherConfig{Batch: 128, Shuffle: true, Seed: 1, DropLast: true, Normalize: norm, Augment: aug})
		if err != nil {
			b.Fatal(err)
		}
		x, y := bt.NewTensors(tensor.Float32)
		epoch := 0
		it := bt.Epoch(epoch)
		images := 0
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			n, ok, err := it.Next(x, y)
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				epoch++
				it = bt.Epoch(epoch)
				if n, _, err = it.Next(x, y); err != nil {
					b.Fatal(err)
				}
			}
			images += n
		}
		el := time.Since(start)
		b.StopTimer()
		it.Close()
		b.ReportMetric(float64(images)/el.Seconds(), "img/s")
	}
	b.Run("preloaded", func(b *testing.B) { run(b, pre) })
	if lazy != nil {
		b.Run("decode", func(b *testing.B) { run(b, lazy) })
	}
}
