package cuda

import "fmt"

// Options tune the device executor (Open, -tags gpu); every build has them
// so that the command line parses them the same way.
type Options struct {
	// Graph captures the step (all kernels and GEMMs) once as a CUDA graph
	// and replays it: one launch per step.
	Graph bool
	// Precision of the GEMMs: FP32 (the zero value too) exact float32,
	// TF32 cuBLAS's TF32 tensor-core math.
	Precision Precision
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
)

// ParsePrecision reads a --precision value. bf16 is refused until the
// bf16 mixed-precision step exists (issue 13, item 3).
func ParsePrecision(s string) (Precision, error) {
	switch p := Precision(s); p {
	case FP32, TF32:
		return p, nil
	case "bf16":
		return "", fmt.Errorf("bf16 mixed precision is not implemented yet (valid now: fp32, tf32)")
	}
	return "", fmt.Errorf("unknown precision %q (valid: fp32, tf32; bf16 is not implemented yet)", s)
}
