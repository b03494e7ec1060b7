//go:build gpu

package pipeline

import (
	"github.com/eraserelu/eraserelu/cuda"
	"github.com/eraserelu/eraserelu/train"
)

func cudaBackend(graph bool) (train.BackendFactory, error) {
	return cuda.DeviceBackend(cuda.Options{Graph: graph}), nil
}
