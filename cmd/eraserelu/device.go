package main

import (
	"fmt"

	"github.com/eraserelu/eraserelu/pipeline"
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
	b, err := pipeline.Device{Name: d.device, CUDAGraph: d.cudaGraph}.Backend()
	if err != nil {
		return nil, fmt.Errorf("--device %w", err)
	}
	return b, nil
}
