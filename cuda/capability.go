package cuda

import (
	"fmt"

	"github.com/eraserelu/eraserelu/cuda/kernels"
)

// CheckCapability refuses a GPU older than the kernels' PTX target: the
// driver cannot JIT-compile compute_70 PTX for it, and would say only
// CUDA_ERROR_NO_BINARY_FOR_GPU at module load.
func CheckCapability(name string, major, minor int) error {
	if major < kernels.MinMajor || major == kernels.MinMajor && minor < kernels.MinMinor {
		return fmt.Errorf("cuda: GPU 0 (%s) has compute capability %d.%d; the kernels (PTX for %s) need %d.%d or newer (Volta or later)",
			name, major, minor, kernels.Arch, kernels.MinMajor, kernels.MinMinor)
	}
	return nil
}
