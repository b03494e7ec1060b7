//go:build gpu

package main

import (
	"github.com/eraserelu/eraserelu/cuda"
	"github.com/eraserelu/eraserelu/train"
)

// gpuBuild says this binary has the CUDA executor (-tags gpu).
const gpuBuild = true

func cudaBackend(graph bool) (train.BackendFactory, error) {
	return cuda.DeviceBackend(cuda.Options{Graph: graph}), nil
}
