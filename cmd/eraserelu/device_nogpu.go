//go:build !gpu

package main

import (
	"errors"

	"github.com/eraserelu/eraserelu/cuda"

	"github.com/eraserelu/eraserelu/train"
	"github.com/spf13/cobra"
)

// gpuBuild says this binary has the CUDA executor (-tags gpu).
const gpuBuild = false

func cudaBackend(cuda.Options) (train.BackendFactory, error) {
	return nil, errors.New("--device cuda: this eraserelu binary was built without CUDA support (build tag gpu); " +
		"build the GPU binary with `make cuda-build` (it writes bin/gpu/eraserelu) and run that on the GPU machine")
}

// gpuCommand exists in every build so that `eraserelu gpu` says how to get
// the binary that has it.
func gpuCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "gpu probe|trace|check|profile|bench [flags]",
		Short:              "Device checks and benchmarks of the CUDA path (GPU binary only; scripts/gpu-check.sh)",
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("gpu: this eraserelu binary was built without CUDA support (build tag gpu); " +
				"build the GPU binary with `make cuda-build` (it writes bin/gpu/eraserelu) and run that on the GPU machine")
		},
	}
}
