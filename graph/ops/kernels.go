package ops

import (
	"fmt"
	"sync"
)

// Kernels chooses among the CPU kernels and sizes their work. It is a
// value passed at compile time (graph.WithKernels), so two programs in one
// process may use different kernels, and tests that compare kernels run in
// parallel. DefaultKernels is what every program gets unless told otherwise;
// switches for kernels this CPU cannot run (AVX-512) are ignored.
type Kernels struct {
	// Direct enables the AVX-512 direct convolution kernels
	// (conv_direct_avx512.c) for the float32 geometries they compute; off,
	// every convolution takes im2col+GEMM.
	Direct bool
	// SIMD enables the AVX-512 element-wise and batch-norm kernels
	// (elementwise_avx512.c); off, the Go kernels run.
	SIMD bool
	// Winograd enables the Winograd F(2x2,3x3) kernel where it applies (it
	// needs Direct).
	Winograd bool
	// WinogradTrainForward lets the training forward (Conv2DOp) take the
	// Winograd kernel too; inference (FusedConv), the stride-1 input
	// gradient and the filter gradient take it whenever Winograd is on. Its
	// sums are as accurate as the direct ones against float64
	// (docs/PERFORMANCE.md) but not the same bits, so at a point where a
	// pre-activation sits within rounding of zero a ReLU can flip against
	// another float32 implementation (cuda's
	// TestRefMatchesCPU/imagenet-resnet-18 judges that case against
	// float64). About 10% of a ResNet-20 training step.
	WinogradTrainForward bool
	// WinogradMinC is the least number of input channels per group for
	// which the Winograd kernel is used: its input transform is paid per
	// channel and output per filter, so with 3 input channels (a network's
	// first layer) the direct kernel is faster (0.89x measured).
	WinogradMinC int
	// TrainingFusion lets the training machine fold memory-bound passes
	// into the op before them where the memory plan runs them in place (the
	// same bits, a read and a write of the activation less each): a
	// residual add into the batch norm before it (BatchNormAdd), a ReLU into
	// the batch norm or add before it (OutputRectifier), and a ReLU's
	// backward into the batch norm's parameter-gradient op after it
	// (ReLUGradMasker).
	TrainingFusion bool
	// ConvBatchStats (with TrainingFusion) lets a convolution whose output
	// a batch norm normalises collect that batch norm's statistics while
	// each image's output is in cache, so the batch norm's training
	// forward makes one pass over its input instead of two (convstats.go).
	// Unlike the rest of the training fusion this changes bits: the
	// statistics are within float32 rounding of the unfused ones, not equal.
	ConvBatchStats bool
	// DataGradViaForward computes the input gradient of stride-1
	// convolutions as a forward convolution with flipped filters
	// (convTransposedGeometry), and that of strided float32 ones on the
	// direct kernels as one stride-1 convolution per stride phase
	// (conv_phase.go), instead of GEMM + col2im.
	DataGradViaForward bool
	// TargetCols is the width (output pixels) a forward or backward GEMM is
	// given by placing several images' columns side by side. Measured on
	// ResNet-20's shapes (2 cores, OpenBLAS): one image per GEMM was as fast
	// or faster than 2-16 side by side down to 8x8 outputs (the copies cost
	// what the wider GEMMs gain), so only images under 8x8 are batched.
	TargetCols int
	// ColPad pads the rows of the column workspace so that their stride is
	// not a power of two (OpenBLAS packs them faster).
	ColPad int
	// MinParallelWork is the least total work (multiply-adds or element
	// visits) for which a convolution, pooling or GEMM kernel is split
	// across workers.
	MinParallelWork float64
	// DirectWGradImageBytes bounds the inputs and output gradients of the
	// images one direct filter-gradient call sweeps per register tile (kept
	// in L2).
	DirectWGradImageBytes int
	// WinogradScratchBytes bounds the transformed inputs and products of
	// the images one Winograd forward call handles (kept in L2).
	WinogradScratchBytes int
	// WinogradWGradBytes bounds the transformed inputs and output gradients
	// of the images one Winograd filter-gradient call handles: the call sums
	// across the 16 lanes of its (filter, channel) accumulators once, so it
	// wants many tiles (at least 64 vectors where this allows).
	WinogradWGradBytes int
}

// DefaultKernels is the measured best of each choice on the machines of
// docs/PERFORMANCE.md: every fast kernel on, the sizes tuned there.
func DefaultKernels() Kernels {
	return Kernels{
		Direct:                true,
		SIMD:                  true,
		Winograd:              true,
		WinogradTrainForward:  true,
		WinogradMinC:          8,
		TrainingFusion:        true,
		ConvBatchStats:        true,
		DataGradViaForward:    true,
		TargetCols:            64,
		ColPad:                16,
		MinParallelWork:       1 << 17,
		DirectWGradImageBytes: 384 << 10,
		WinogradScratchBytes:  640 << 10,
		WinogradWGradBytes:    4 << 20,
	}
}

// Validate reports a size that no kernel can work with.
func (k *Kernels) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"TargetCols", k.TargetCols},
		{"DirectWGradImageBytes", k.DirectWGradImageBytes},
		{"WinogradScratchBytes", k.WinogradScratchBytes},
		{"WinogradWGradBytes", k.WinogradWGradBytes},
	} {
		if f.v < 1 {
			return fmt.Errorf("kernels: %s is %d, want at least 1", f.name, f.v)
		}
	}
	if k.ColPad < 0 || k.WinogradMinC < 0 || k.MinParallelWork < 0 {
		return fmt.Errorf("kernels: ColPad %d, WinogradMinC %d and MinParallelWork %g must not be negative",
			k.ColPad, k.WinogradMinC, k.MinParallelWork)
	}
	return nil
}

// direct reports whether the direct kernels run on this CPU under k.
func (k *Kernels) direct() bool { return convDirectCPU && k.Direct }

// simd reports whether float32 element-wise kernels take the AVX-512 path.
func (k *Kernels) simd() bool { return convDirectCPU && k.SIMD }

// String names the convolution kernels k gives float32 on this CPU
// (benchmarks report it beside the BLAS).
func (k Kernels) String() string {
	switch {
	case k.direct() && k.Winograd:
		return "AVX-512 direct + Winograd F(2x2,3x3); im2col+GEMM for other geometries"
	case k.direct():
		return "AVX-512 direct; im2col+GEMM for other geometries"
	}
	return "im2col + GEMM"
}

// Env is what the kernels of one program run with: its Kernels and the
// workspace arena of its convolutions. im2col columns, gathered gradients
// and per-worker partial sums live only within one kernel call, and a
// program runs its ops one at a time, so one arena (grown to the largest
// need, never shrunk) serves all convolutions of a program instead of one
// workspace per op; programs with their own Env run concurrently without
// waiting for each other. The mutex serialises kernel calls that share an
// Env from several goroutines.
type Env struct {
	k         Kernels
	mu        sync.Mutex
	scratch32 []float32
	scratch64 []float64
}

// NewEnv returns an Env running the kernels k (checked by Validate).
func NewEnv(k Kernels) (*Env, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	return &Env{k: k}, nil
}

// Kernels is the configuration e runs.
func (e *Env) Kernels() Kernels { return e.k }

// defaultEnv runs the ops that no program configured (ops run directly, as
// in the op tests, or by Gorgonia's machines). Its configuration never
// changes; only its arena grows.
var defaultEnv = &Env{k: DefaultKernels()}

// EnvUser is implemented by ops whose kernels read an Env: graph.Compile
// hands every such op of a program the program's Env before it first runs.
type EnvUser interface {
	UseEnv(*Env)
}

// withEnv is embedded by ops that run configurable kernels.
type withEnv struct{ env *Env }

// UseEnv makes the op's kernels run with e (EnvUser).
func (w *withEnv) UseEnv(e *Env) { w.env = e }

// kern is the op's Env: the one of its program, or the default.
func (w *withEnv) kern() *Env {
	if w.env == nil {
		return defaultEnv
	}
	return w.env
}

// scratchLock locks e's arena and returns at least n elements of it as
// []T; call e.scratchUnlock when done with them.
func scratchLock[T Float](e *Env, n int) []T {
	e.mu.Lock()
	var z T
	switch any(z).(type) {
	case float32:
		if len(e.scratch32) < n {
			e.scratch32 = make([]float32, n)
		}
		return any(e.scratch32).([]T)
	default:
		if len(e.scratch64) < n {
			e.scratch64 = make([]float64, n)
		}
		return any(e.scratch64).([]T)
	}
}

func (e *Env) scratchUnlock() { e.mu.Unlock() }
