package pipeline

import (
	"fmt"

	"github.com/eraserelu/eraserelu/cuda"
	"github.com/eraserelu/eraserelu/train"
)

// Device is where a training run's passes go.
type Device struct {
	// Name is "cpu" (or ""), "cuda" (GPU 0, in the binary built with -tags
	// gpu) or "cuda-ref" (the CUDA path on its CPU reference interpreter:
	// every kernel and the memory plan, slowly, without a device).
	Name string
	// CUDAGraph replays each training step as one captured CUDA graph
	// (cuda only).
	CUDAGraph bool
	// Precision is the device path's arithmetic (cuda.FP32 when empty): tf32
	// on cuda, bf16 and fp16 (with loss scaling) mixed precision on cuda
	// and cuda-ref; the CPU refuses anything but fp32.
	Precision cuda.Precision
	// RecomputeBN recomputes batch-norm outputs in the backward pass
	// instead of keeping them (cuda and cuda-ref: a smaller arena, the
	// same results bit for bit; cuda.Lowering).
	RecomputeBN bool
}

// Backend is the trainer's backend for the device (train.Options.Backend;
// nil: the CPU backend).
func (d Device) Backend() (train.BackendFactory, error) {
	prec := d.Precision
	if prec == "" {
		prec = cuda.FP32
	}
	switch d.Name {
	case "", "cpu":
		if d.RecomputeBN {
			return nil, fmt.Errorf("%q: recomputing batch-norm outputs is a choice of the CUDA path (cuda, cuda-ref)", d.Name)
		}
		if prec != cuda.FP32 {
			return nil, fmt.Errorf("%q: precision %s is a choice of the CUDA path (the CPU computes in fp32)", d.Name, prec)
		}
		return nil, nil
	case "cuda":
		return cudaBackend(cuda.Options{Graph: d.CUDAGraph, Precision: prec, RecomputeBN: d.RecomputeBN})
	case "cuda-ref":
		return cuda.NewBackend(cuda.NewRefExecutor, cuda.Lowering{Precision: prec, RecomputeBN: d.RecomputeBN}), nil
	}
	return nil, fmt.Errorf("%q: unknown device (valid: cpu, cuda, cuda-ref)", d.Name)
}
