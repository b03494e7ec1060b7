//go:build gpu

package pipeline

import (
	"github.com/eraserelu/eraserelu/cuda"
	"github.com/eraserelu/eraserelu/train"
)

func cudaBackend(opt cuda.Options) (train.BackendFactory, error) {
	return cuda.DeviceBackend(opt), nil
}
