package main

import (
	"fmt"

	"github.com/eraserelu/eraserelu/cuda"
	"github.com/eraserelu/eraserelu/train"
	"github.com/spf13/pflag"
)

// deviceFlags choose where training runs.
type deviceFlags struct {
	device    string
	cudaGraph bool
}

func (d *deviceFlags) add(f *pflag.FlagSet) {
	f.StringVar(&d.device, "device", "cpu", "where training runs: cpu; cuda (GPU 0, in the GPU binary bin/gpu/eraserelu that make cuda-build makes); "+
		"cuda-ref (the CUDA path on its CPU reference interpreter: slow, for checks)")
	f.BoolVar(&d.cudaGraph, "cuda-graph", true, "with --device cuda: replay each training step as one captured CUDA graph")
}

// backend is the trainer backend the flags ask for (nil: the CPU).
func (d *deviceFlags) backend() (train.BackendFactory, error) {
	switch d.device {
	case "cpu":
		return nil, nil
	case "cuda":
		return cudaBackend(d.cudaGraph)
	case "cuda-ref":
		return cuda.NewBackend(cuda.NewRefExecutor), nil
	}
	return nil, fmt.Errorf("--device %q: unknown device (valid: cpu, cuda, cuda-ref)", d.device)
}
