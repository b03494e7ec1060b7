package main

import (
	"fmt"

	"github.com/eraserelu/eraserelu/cuda"
	"github.com/eraserelu/eraserelu/pipeline"
	"github.com/eraserelu/eraserelu/train"
	"github.com/spf13/pflag"
)

// deviceFlags choose where training runs.
type deviceFlags struct {
	device      string
	cudaGraph   bool
	precision   string
	recomputeBN bool
	directConv  bool
}

func (d *deviceFlags) add(f *pflag.FlagSet) {
	f.StringVar(&d.device, "device", "cpu", "where training runs: cpu; cuda (GPU 0, in the GPU binary bin/gpu/eraserelu that make cuda-build makes); "+
		"cuda-ref (the CUDA path on its CPU reference interpreter: slow, for checks)")
	f.BoolVar(&d.cudaGraph, "cuda-graph", true, "with --device cuda: replay each training step as one captured CUDA graph")
	addPrecisionFlag(f, &d.precision)
	f.BoolVar(&d.recomputeBN, "recompute-bn", false, "with --device cuda or cuda-ref: recompute batch-norm outputs in the backward pass "+
		"instead of keeping them (a smaller device arena, one more pass per batch norm, the same results bit for bit)")
	f.BoolVar(&d.directConv, "direct-conv", false, "with --device cuda or cuda-ref and fp32 or tf32: run stride-1 3x3 convolutions (forward and data gradient) "+
		"with a direct kernel instead of im2col/col2im and GEMMs (no column buffers; float32 sums in another order)")
}

// args are the flags again, for a process started with the same choice
// (a campaign's workers).
func (d *deviceFlags) args() []string {
	return []string{"--device", d.device, fmt.Sprintf("--cuda-graph=%v", d.cudaGraph), "--precision", d.precision,
		fmt.Sprintf("--recompute-bn=%v", d.recomputeBN), fmt.Sprintf("--direct-conv=%v", d.directConv)}
}

// addPrecisionFlag is --precision, the same on every command that has it.
func addPrecisionFlag(f *pflag.FlagSet, v *string) {
	f.StringVar(v, "precision", string(cuda.FP32), "arithmetic of the GEMMs: fp32 (exact float32, every device); "+
		"tf32 (TF32 tensor cores, --device cuda only); bf16 (mixed precision: bf16 GEMM operands, fp32 accumulation, "+
		"fp32 master weights; --device cuda on compute capability 8.0 or newer, or cuda-ref)")
}

// precisionFor checks a --precision value against where the step runs:
// the CPU computes in fp32 only; the CUDA path's CPU interpreter also
// rounds as the bf16 step does (TF32 is a cuBLAS mode it has not).
func precisionFor(value, device string) (cuda.Precision, error) {
	p, err := cuda.ParsePrecision(value)
	if err != nil {
		return "", fmt.Errorf("--precision: %w", err)
	}
	switch {
	case p == cuda.FP32, device == "cuda", p == cuda.BF16 && device == "cuda-ref":
		return p, nil
	case p == cuda.BF16:
		return "", fmt.Errorf("--precision bf16: %s computes in fp32 only (bf16 needs --device cuda, in the GPU binary, or cuda-ref)", device)
	}
	return "", fmt.Errorf("--precision %s: %s computes in fp32 only (%s needs --device cuda, in the GPU binary)", p, device, p)
}

// backend is the trainer backend the flags ask for (nil: the CPU).
func (d *deviceFlags) backend() (train.BackendFactory, error) {
	prec, err := precisionFor(d.precision, d.device)
	if err != nil {
		return nil, err
	}
	if d.device == "cpu" {
		for _, c := range []struct {
			flag string
			on   bool
		}{{"--recompute-bn", d.recomputeBN}, {"--direct-conv", d.directConv}} {
			if c.on {
				return nil, fmt.Errorf("%s: a choice of the CUDA path (--device cuda or cuda-ref); --device cpu chooses its kernels itself", c.flag)
			}
		}
	}
	low := cuda.Lowering{Precision: prec, RecomputeBN: d.recomputeBN, DirectConv: d.directConv}
	b, err := pipeline.Device{Name: d.device, CUDAGraph: d.cudaGraph, Lowering: low}.Backend()
	if err != nil {
		return nil, fmt.Errorf("--device %w", err)
	}
	return b, nil
}
