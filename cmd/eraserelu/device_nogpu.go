//go:build !gpu

package main

import (
	"errors"

	"github.com/eraserelu/eraserelu/train"
)

// gpuBuild says this binary has the CUDA executor (-tags gpu).
const gpuBuild = false

func cudaBackend(bool) (train.BackendFactory, error) {
	return nil, errors.New("--device cuda: this eraserelu binary was built without CUDA support (build tag gpu); " +
		"build the GPU binary with `make cuda-build` (it writes bin/gpu/eraserelu) and run that on the GPU machine")
}
