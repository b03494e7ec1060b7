package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/experiments"
	"github.com/eraserelu/eraserelu/train"
	"github.com/spf13/pflag"
)

// TestDeviceFlagErrors: an unknown --device, and --device cuda in a binary
// built without the gpu tag, fail at once, naming the flag (and how to
// build the GPU binary), before anything is read or written.
func TestDeviceFlagErrors(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	for _, cmd := range []string{"train", "experiment"} {
		args := []string{cmd, "--device", "tpu", "--out", out}
		if cmd == "experiment" {
			args = append(args, "fig3c")
		}
		_, err := run(t, args...)
		if err == nil || !strings.Contains(err.Error(), `--device "tpu": unknown device (valid: cpu, cuda, cuda-ref)`) {
			t.Errorf("%s --device tpu: %v", cmd, err)
		}
		if gpuBuild {
			continue
		}
		args[2] = "cuda"
		_, err = run(t, args...)
		if err == nil || !strings.Contains(err.Error(), "--device cuda: this binary was built without CUDA support") ||
			!strings.Contains(err.Error(), "make cuda-build") {
			t.Errorf("%s --device cuda: %v", cmd, err)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused run created %s", out)
	}
}

// TestCUDAChoicesOnCPU: the CUDA path's lowering choices are refused on
// the CPU, naming the flag, before anything is written.
func TestCUDAChoicesOnCPU(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	for _, flag := range []string{"--recompute-bn", "--direct-conv"} {
		_, err := run(t, "train", "--device", "cpu", flag, "--out", out)
		if err == nil || !strings.Contains(err.Error(), flag+": a choice of the CUDA path") {
			t.Errorf("train --device cpu %s: %v", flag, err)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused run created %s", out)
	}
}

// TestTrainOnDevicePath trains a ResNet-8 on 100 MNIST images through the
// CUDA path's CPU interpreter (--device cuda-ref), which the GPU binary's
// --device cuda shares all but the executor with, and on the CPU: the
// runs agree to float32 tolerance, and the run's log names the backend.
func TestTrainOnDevicePath(t *testing.T) {
	data := sharedData(t)
	res := map[string]train.Result{}
	for _, dev := range []string{"cpu", "cuda-ref"} {
		r, log := trainMNISTTiny(t, data, "--device", dev)
		res[dev] = r
		if want := `"backend":"` + dev; !strings.Contains(log, want) {
			t.Errorf("--device %s: train.log does not name the backend (%s)", dev, want)
		}
	}
	c, d := res["cpu"].Final, res["cuda-ref"].Final
	if c.Test.Examples != 50 || d.Test.Examples != 50 || res["cuda-ref"].Steps != 5 {
		t.Fatalf("cpu %+v\ncuda-ref %+v", res["cpu"], res["cuda-ref"])
	}
	for _, m := range [][2]train.Metrics{{d.Train, c.Train}, {d.Test, c.Test}} {
		if diff := (m[0].Loss - m[1].Loss) / m[1].Loss; diff > 1e-4 || diff < -1e-4 || m[0].Top1Err != m[1].Top1Err {
			t.Errorf("cuda-ref %+v, cpu %+v", m[0], m[1])
		}
	}
}

// TestPrecisionFlagErrors: an unknown --precision is refused as unknown,
// tf32 wherever the step runs on the CPU (train and experiment on --device
// cpu or cuda-ref, bench), bf16 on the CPU trainer and bench (cuda-ref
// runs it: TestTrainBF16OnDevicePath), and bf16 on --device cuda in the
// default build as the device is, each naming the flag, before anything is
// written.
func TestPrecisionFlagErrors(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"train", "--precision", "bf16"}, "--precision bf16: cpu computes in fp32 only"},
		{[]string{"train", "--device", "cuda", "--precision", "bf16"}, "--device cuda"},
		{[]string{"train", "--precision", "fp64"}, `--precision: unknown precision "fp64"`},
		{[]string{"train", "--precision", "tf32"}, "--precision tf32: cpu computes in fp32 only"},
		{[]string{"train", "--device", "cuda-ref", "--precision", "tf32"}, "--precision tf32: cuda-ref computes in fp32 only"},
		{[]string{"experiment", "fig3c", "--precision", "tf32"}, "--precision tf32: cpu computes in fp32 only"},
		{[]string{"bench", "--precision", "tf32"}, "--precision tf32: cpu computes in fp32 only"},
		{[]string{"bench", "--precision", "bf16"}, "--precision bf16: cpu computes in fp32 only"},
	}
	for _, c := range cases {
		args := c.args
		if args[0] != "bench" {
			args = append(args, "--out", out)
		}
		_, err := run(t, args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused run created %s", out)
	}
}

// TestTrainBF16OnDevicePath: train --device cuda-ref --precision bf16 (the
// bf16 step on the CPU interpreter) trains and evaluates the run of
// TestTrainOnDevicePath within bf16's distance of the CPU's: the losses
// within 5% (cuda.TestBackendBF16 bounds a step's), and the log says bf16.
func TestTrainBF16OnDevicePath(t *testing.T) {
	data := sharedData(t)
	res := map[string]train.Result{}
	for _, prec := range []string{"fp32", "bf16"} {
		dev := "cuda-ref"
		if prec == "fp32" {
			dev = "cpu"
		}
		r, log := trainMNISTTiny(t, data, "--device", dev, "--precision", prec)
		res[prec] = r
		if prec == "bf16" && !strings.Contains(log, "bf16") {
			t.Errorf("train.log does not say bf16")
		}
	}
	c, d := res["fp32"].Final, res["bf16"].Final
	if d.Test.Examples != 50 || res["bf16"].Steps != 5 {
		t.Fatalf("bf16 %+v", res["bf16"])
	}
	for _, m := range [][2]train.Metrics{{d.Train, c.Train}, {d.Test, c.Test}} {
		if diff := (m[0].Loss - m[1].Loss) / m[1].Loss; diff > 0.05 || diff < -0.05 || diff == 0 {
			t.Errorf("bf16 %+v, cpu %+v: want within 5%%, not equal", m[0], m[1])
		}
	}
}

// trainMNISTTiny trains ResNet-8 for one epoch on 100 MNIST images (5
// steps), tested on 50, with the extra flags, and returns its results and
// its train.log.
func trainMNISTTiny(t *testing.T, data string, flags ...string) (train.Result, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "run")
	args := append([]string{"train", "--arch", "resnet-8", "--dataset", "mnist", "--data", data,
		"--train-per-class", "10", "--test-per-class", "5", "--epochs", "1", "--batch-size", "20", "--out", out}, flags...)
	if _, err := run(t, args...); err != nil {
		t.Fatalf("%v: %v", flags, err)
	}
	b, err := os.ReadFile(filepath.Join(out, train.ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	var r train.Result
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	log, _ := os.ReadFile(filepath.Join(out, train.LogFile))
	return r, string(log)
}

// TestWorkerKeepsDeviceChoice: a campaign's worker process is started with
// every device flag of the campaign (before, --precision was dropped and
// bf16 campaigns trained in fp32), and the worker command parses them back
// to the same choice.
func TestWorkerKeepsDeviceChoice(t *testing.T) {
	for _, argv := range [][]string{
		{"--device", "cuda-ref", "--precision", "bf16", "--recompute-bn", "--cuda-graph=false"},
		{"--device", "cuda", "--precision", "tf32", "--direct-conv"},
		{},
	} {
		var d deviceFlags
		f := pflag.NewFlagSet("campaign", pflag.ContinueOnError)
		d.add(f)
		if err := f.Parse(argv); err != nil {
			t.Fatal(err)
		}
		w := worker{binary: "eraserelu", dataDir: "data", device: d}
		args, err := w.args(experiments.Job{ID: "j"}, "dir")
		if err != nil {
			t.Fatal(err)
		}
		cmd := campaignWorkerCommand()
		if err := cmd.ParseFlags(args[2:]); err != nil {
			t.Fatalf("%v: the worker does not parse its arguments %v: %v", argv, args, err)
		}
		var back deviceFlags
		g := pflag.NewFlagSet("worker", pflag.ContinueOnError)
		back.add(g)
		g.String("dir", "", "")
		g.String("job", "", "")
		g.String("data", "", "")
		if err := g.Parse(args[2:]); err != nil {
			t.Fatal(err)
		}
		if back != d {
			t.Errorf("%v: the worker gets %+v, the campaign chose %+v", argv, back, d)
		}
	}
}
