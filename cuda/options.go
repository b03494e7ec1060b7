package cuda

import "fmt"

// Options tune the device executor (Open, -tags gpu); every build has them
// so that the command line parses them the same way.
type Options struct {
	// Graph captures the step (all kernels and GEMMs) once as a CUDA graph
	// and replays it: one launch per step.
	Graph bool
	// Lowering is how the step was lowered, which the executor must match:
	// its Precision is also the GEMMs' cuBLAS math mode (TF32 is only
	// that), and a BF16 step must be lowered with BF16 (Lower).
	// DeviceBackend lowers with it.
	Lowering
}

// Lowering chooses how LowerProgram lowers a program: the arithmetic of its
// GEMMs, how its convolutions run, and what its backward pass recomputes
// instead of keeping.
type Lowering struct {
	// Precision of the GEMMs (FP32 when empty).
	Precision Precision
	// RecomputeBN recomputes every batch-norm (+ReLU) output the backward
	// pass reads from the convolution output and the batch statistics,
	// just before its first use there (Step.RecomputeBN, recompute.go).
	RecomputeBN bool
	// DirectConv runs the stride-1 3x3 convolutions (forward and data
	// gradient) of an fp32 step with conv_direct, without column buffers
	// (convdirect.go); bf16 steps keep their tensor-core GEMMs.
	DirectConv bool
}

// Precision is the arithmetic of a device step's GEMMs (convolutions and
// linear layers). Every other kernel computes in float32 (reductions in
// double) whatever the precision.
type Precision string

const (
	// FP32: exact float32 GEMMs (cuBLAS default math); the precision of
	// the CPU, the reference interpreter and the checks.
	FP32 Precision = "fp32"
	// TF32: cuBLAS may use TF32 tensor cores for the GEMMs (10-bit
	// mantissa inputs, float32 accumulation), PyTorch's default for cuDNN
	// convolutions (TF32 tensor cores exist from compute capability 8.0).
	TF32 Precision = "tf32"
	// BF16: mixed precision. Every GEMM (convolution, linear layer) reads
	// bfloat16 operands (round-to-nearest-even copies of its fp32 inputs
	// and of the fp32 master weights) on tensor cores and accumulates and
	// writes fp32; everything else stays fp32 (bf16.go, docs/CUDA.md
	// "bf16 mixed precision"). A lowering choice, not only a cuBLAS mode:
	// the reference interpreter rounds at the same points.
	BF16 Precision = "bf16"
)

// ParsePrecision reads a --precision value.
func ParsePrecision(s string) (Precision, error) {
	switch p := Precision(s); p {
	case FP32, TF32, BF16:
		return p, nil
	}
	return "", fmt.Errorf("unknown precision %q (valid: fp32, tf32, bf16)", s)
}

// lowered is the precision a step is lowered with: TF32 (and the zero
// value) is a cuBLAS mode over the fp32 step.
func (p Precision) lowered() Precision {
	if p == BF16 {
		return BF16
	}
	return FP32
}
