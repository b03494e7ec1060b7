//go:build !gpu

package pipeline

import (
	"errors"

	"github.com/eraserelu/eraserelu/cuda"
	"github.com/eraserelu/eraserelu/train"
)

func cudaBackend(cuda.Options) (train.BackendFactory, error) {
	return nil, errors.New("cuda: this binary was built without CUDA support (build tag gpu); " +
		"build the GPU binary with `make cuda-build` (it writes bin/gpu/eraserelu) and run that on the GPU machine")
}
