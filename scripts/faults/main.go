// Command faults is the fault-injection suite of the trainer: it drives the
// real eraserelu binary through small real runs (an MNIST MLP, and at full
// scale a ResNet on the CIFAR-10 JPEG copy), kills them (SIGKILL) during
// training steps, evaluation and checkpoint writes, damages their
// checkpoints class by class, fills the disk under a checkpoint write, and
// checks that every resume ends bit-identical to an uninterrupted run and
// that no damage goes unnoticed. It prints kills survived/tried,
// corruptions detected/tried and runs identical/total, and exits 1 if any
// check failed. `make faults` runs it at full scale; its test runs the CI
// scale inside `go test ./...`.
//
//	go run ./scripts/faults --scale full --data ../shared/datasets
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

func main() {
	scale := flag.String("scale", "full", "ci (the test's size) or full (make faults)")
	data := flag.String("data", filepath.Join("..", "shared", "datasets"), "data directory holding mnist/ and cifar10-jpeg.tar.gz")
	bin := flag.String("bin", "", "the eraserelu binary (default: built from ./cmd/eraserelu)")
	seed := flag.Uint64("seed", uint64(time.Now().UnixNano()), "seed of the kill moments and flipped bytes")
	flag.Parse()
	if err := run(*scale, *data, *bin, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
}

func run(scale, data, bin string, seed uint64) error {
	loads, skipped, err := Workloads(scale, data)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "faults-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if bin == "" {
		bin = filepath.Join(work, "eraserelu")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/eraserelu").CombinedOutput(); err != nil {
			return fmt.Errorf("build eraserelu: %v\n%s", err, out)
		}
	}
	start := time.Now()
	fmt.Printf("fault-injection suite, scale %s, seed %d\n", scale, seed)
	s := &Suite{Bin: bin, Work: work, Seed: seed, Out: os.Stdout}
	f := s.Run(loads, true)
	f.Skipped = append(skipped, f.Skipped...)
	f.Print(os.Stdout)
	fmt.Printf("took %s\n", time.Since(start).Round(time.Second))
	if !f.OK() {
		return fmt.Errorf("some checks failed")
	}
	return nil
}

// Workloads are the runs of a scale, and those skipped for want of data.
// MNIST must be under data/mnist; the full scale's ResNet runs on
// data/cifar10-jpeg.tar.gz when it is there.
func Workloads(scale, data string) (loads []Workload, skipped []string, err error) {
	mnist := filepath.Join(data, "mnist")
	if _, err := os.Stat(mnist); err != nil {
		return nil, nil, fmt.Errorf("MNIST: %w (fetch it: eraserelu data fetch mnist --dir %s)", err, mnist)
	}
	common := []string{"--data", data, "--dataset", "mnist", "--recipe", "mlp-mnist"}
	switch scale {
	case "ci":
		return []Workload{{Name: "mlp-3", Kills: 3, FlipsPerRegion: 1,
			Args: append(common, "--arch", "mlp-3", "--train-per-class", "50", "--test-per-class", "50", "--epochs", "3")}}, nil, nil
	case "full":
		full := []Workload{
			{Name: "mlp-12", Kills: 24, FlipsPerRegion: 1,
				Args: append(common, "--arch", "mlp-12", "--erase", "0.5", "--train-per-class", "50", "--test-per-class", "50", "--epochs", "3")},
			{Name: "resnet-20", Kills: 6, FlipsPerRegion: 1,
				Args: []string{"--data", data, "--dataset", "cifar10", "--recipe", "he-resnet", "--arch", "resnet-20", "--erase", "1",
					"--train-per-class", "20", "--test-per-class", "10", "--batch-size", "50", "--iterations", "0", "--epochs", "2"}},
		}
		if _, err := os.Stat(filepath.Join(data, "cifar10-jpeg.tar.gz")); err != nil {
			return full[:1], []string{fmt.Sprintf("resnet-20: no CIFAR-10 copy (%v)", err)}, nil
		}
		return full, nil, nil
	}
	return nil, nil, fmt.Errorf("--scale %q: want ci or full", scale)
}
