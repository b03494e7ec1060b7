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

// BF16Major is the compute capability (major; minor 0) from which bf16
// tensor-core GEMMs exist (Ampere).
const BF16Major = 8

// CheckPrecision refuses to run step s with precision prec on a GPU of
// this compute capability: a bf16 step needs bf16 tensor cores (8.0 or
// newer), an fp16 step fp16 ones (7.0 or newer: a check that holds on
// every GPU CheckCapability admits, kept beside bf16's so that the rule
// is stated where it is enforced), and the step and the executor's option
// must agree (a bf16 or fp16 step is lowered with its precision, Lower;
// TF32 is a cuBLAS mode over the fp32 step).
func CheckPrecision(s *Step, prec Precision, name string, major, minor int) error {
	if s.Precision.lowered() != prec.lowered() {
		return fmt.Errorf("cuda: the step was lowered for %s, the executor was opened for %s", s.Precision.lowered(), prec.lowered())
	}
	if prec == BF16 && major < BF16Major {
		return fmt.Errorf("cuda: --precision bf16 needs bf16 tensor cores (compute capability %d.0 or newer, Ampere or later); GPU 0 (%s) has %d.%d: use --precision fp32",
			BF16Major, name, major, minor)
	}
	if prec == FP16 && major < FP16Major {
		return fmt.Errorf("cuda: --precision fp16 needs fp16 tensor cores (compute capability %d.0 or newer); GPU 0 (%s) has %d.%d: use --precision fp32",
			FP16Major, name, major, minor)
	}
	return nil
}

// FP16Major is the compute capability (major; minor 0) from which fp16
// tensor-core GEMMs exist (Volta): every GPU the kernels run on.
const FP16Major = 7
