package ops

import (
	"fmt"
	"math"
	"os"
	"testing"
	"time"
)

// TestConvTune compares the conv kernels' images-per-GEMM and column padding
// settings on ResNet-20's shapes, interleaved and taking the best of 12 runs
// so that other load on the machine affects all settings alike. It is how
// Kernels.TargetCols and Kernels.ColPad were chosen; run it with
//
//	CONV_TUNE=1 go test -run ConvTune -v ./graph/ops/
func TestConvTune(t *testing.T) {
	if os.Getenv("CONV_TUNE") == "" {
		t.Skip("set CONV_TUNE=1 to run")
	}
	// cols: images per GEMM times pixels; pad: column padding; serial: one
	// worker calling OpenBLAS with its own threads, instead of one worker
	// per core with single-threaded GEMMs.
	type knob struct {
		cols, pad int
		serial    bool
	}
	knobs := []knob{{1, 16, true}, {4096, 16, true}, {1, 0, false}, {1, 16, false}, {1024, 16, false}, {4096, 16, false}}
	envs := make([]*Env, len(knobs))
	for i, kn := range knobs {
		k := DefaultKernels()
		k.TargetCols, k.ColPad = kn.cols, kn.pad
		if kn.serial {
			k.MinParallelWork = math.Inf(1)
		}
		envs[i] = testEnv(t, k)
	}
	for _, s := range convResNet20Shapes {
		cb := convNewBench(s.c, s.hw, s.f, s.s, true)
		parts := map[string]func() error{
			"fwd":  cb.forward,
			"data": func() error { _, err := cb.data.Do(cb.w, cb.dy); return err },
			"filt": func() error { _, err := cb.filter.Do(cb.x, cb.dy); return err },
		}
		for _, part := range []string{"fwd", "data", "filt"} {
			best := make([]time.Duration, len(knobs))
			for it := 0; it < 12; it++ {
				for i := range knobs {
					cb.useEnv(envs[i])
					t0 := time.Now()
					if err := parts[part](); err != nil {
						t.Fatal(err)
					}
					if d := time.Since(t0); best[i] == 0 || d < best[i] {
						best[i] = d
					}
				}
			}
			line := fmt.Sprintf("%-22s %-5s", s.name, part)
			for i, k := range knobs {
				mode := "par"
				if k.serial {
					mode = "ser"
				}
				line += fmt.Sprintf(" %s/c%d/p%d=%4.0f", mode, k.cols, k.pad, 2*cb.macs/best[i].Seconds()/1e9)
			}
			t.Log(line)
		}
	}
}
