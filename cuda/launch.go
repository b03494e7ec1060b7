package cuda

import "fmt"

// Dim is a launch configuration: grid and block sizes (x only) and dynamic
// shared memory.
type Dim struct {
	Grid, Block, Shared int
}

// Launch shapes of the catalog.
const (
	// BlockSize is the block of every kernel; ops.cu's reductions assume it (BLOCK).
	BlockSize = 256
	// MaxGrid caps grid-stride kernels: enough blocks to fill an H200 (132
	// SMs x 16 resident blocks of 256 threads) several times over, few
	// enough that each thread loops when the tensor is huge.
	MaxGrid = 132 * 16 * 4
)

// gridStride is the launch of a kernel whose threads loop over n elements.
func gridStride(n int) Dim {
	g := (n + BlockSize - 1) / BlockSize
	g = max(1, min(g, MaxGrid))
	return Dim{Grid: g, Block: BlockSize}
}

// perItem is one thread per item, no loop.
func perItem(n int) Dim {
	return Dim{Grid: max(1, (n+BlockSize-1)/BlockSize), Block: BlockSize}
}

// perBlock is one block per item (a channel reduction).
func perBlock(n int) Dim { return Dim{Grid: max(1, n), Block: BlockSize} }

// Kernel is one entry of the catalog: a kernel of kernels/ops.cu with its
// parameter counts (ints, then floats, then buffers), launch rule and
// reference semantics. Each op family's file defines its kernels
// (defKernel) beside its lowering.
type Kernel struct {
	Name                  string
	Ints, Floats, Buffers int
	// Launch computes the configuration from the int arguments.
	Launch func(ints []int) Dim
	ref    func(r *Ref, in Instr, b [][]float32) error
}

// Kernels is the catalog, keyed by name. "gemm" is not a kernel of ops.cu
// but a cuBLAS call (see GemmArgs).
var Kernels = map[string]Kernel{}

// reduceChunk is about how many elements one block of a two-launch channel
// reduction (bn_stats_part, bn_param_part) sums: enough to hide the block's
// start-up, few enough that a layer of 16 channels fills the device.
const reduceChunk = 4096

// ChannelChunk is the number of images one block of a channel reduction
// covers for planes of inner elements.
func ChannelChunk(inner int) int { return max(1, reduceChunk/max(inner, 1)) }

// ChannelParts is the number of partial sums per channel: ceil(n / chunk).
func ChannelParts(n, chunk int) int { return (n + chunk - 1) / chunk }

// GemmArgs are the ints of a "gemm" instruction: row-major, strided-batched
//
//	C_b = alpha * op(A_b) · op(B_b) + beta * C_b,  b < Batch,
//
// with op(A) M x K, op(B) K x N, X_b = X + b*StrideX (elements), and the
// floats (alpha, beta). Buffers: A, B, C; AOff, BOff, COff are element
// offsets into them (a group of a grouped convolution).
type GemmArgs struct {
	TransA, TransB            bool
	M, N, K                   int
	LDA, LDB, LDC             int
	Batch                     int
	StrideA, StrideB, StrideC int
	AOff, BOff, COff          int
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Ints encodes the arguments for an Instr.
func (g GemmArgs) Ints() []int {
	return []int{b2i(g.TransA), b2i(g.TransB), g.M, g.N, g.K, g.LDA, g.LDB, g.LDC, g.Batch, g.StrideA, g.StrideB, g.StrideC, g.AOff, g.BOff, g.COff}
}

// DecodeGemm is the inverse of Ints.
func DecodeGemm(v []int) (GemmArgs, error) {
	if len(v) != 15 {
		return GemmArgs{}, fmt.Errorf("gemm: %d ints, want 15", len(v))
	}
	return GemmArgs{TransA: v[0] != 0, TransB: v[1] != 0, M: v[2], N: v[3], K: v[4], LDA: v[5], LDB: v[6], LDC: v[7],
		Batch: v[8], StrideA: v[9], StrideB: v[10], StrideC: v[11], AOff: v[12], BOff: v[13], COff: v[14]}, nil
}

// ColumnMajor maps a row-major GEMM onto cuBLAS's column-major one: C is
// stored row-major M x N, i.e. column-major N x M, and Cᵀ = op(B)ᵀ·op(A)ᵀ.
// The returned call is cublasSgemmStridedBatched(transa, transb, m, n, k,
// A=first, lda, B=second, ldb, C, ldc) with first/second naming which of
// the row-major operands goes where (always B first).
type ColumnMajorCall struct {
	TransA, TransB bool // for cuBLAS's first and second operand
	M, N, K        int
	LDA, LDB, LDC  int
}

// ColumnMajor returns the cuBLAS call for g.
func (g GemmArgs) ColumnMajor() ColumnMajorCall {
	return ColumnMajorCall{TransA: g.TransB, TransB: g.TransA, M: g.N, N: g.M, K: g.K, LDA: g.LDB, LDB: g.LDA, LDC: g.LDC}
}

// Validate checks the leading dimensions and that the operands lie within
// buffers of the given sizes.
func (g GemmArgs) Validate(sizeA, sizeB, sizeC int) error {
	rowsA, colsA := g.M, g.K
	if g.TransA {
		rowsA, colsA = g.K, g.M
	}
	rowsB, colsB := g.K, g.N
	if g.TransB {
		rowsB, colsB = g.N, g.K
	}
	switch {
	case g.M < 1 || g.N < 1 || g.K < 1 || g.Batch < 1:
		return fmt.Errorf("gemm: empty %dx%dx%d batch %d", g.M, g.N, g.K, g.Batch)
	case g.LDA < colsA || g.LDB < colsB || g.LDC < g.N:
		return fmt.Errorf("gemm: leading dimensions %d,%d,%d below %d,%d,%d", g.LDA, g.LDB, g.LDC, colsA, colsB, g.N)
	}
	need := func(off, stride, rows, ld, cols int) int {
		return off + (g.Batch-1)*stride + (rows-1)*ld + cols
	}
	if n := need(g.AOff, g.StrideA, rowsA, g.LDA, colsA); n > sizeA {
		return fmt.Errorf("gemm: A needs %d elements, buffer has %d", n, sizeA)
	}
	if n := need(g.BOff, g.StrideB, rowsB, g.LDB, colsB); n > sizeB {
		return fmt.Errorf("gemm: B needs %d elements, buffer has %d", n, sizeB)
	}
	if n := need(g.COff, g.StrideC, g.M, g.LDC, g.N); n > sizeC {
		return fmt.Errorf("gemm: C needs %d elements, buffer has %d", n, sizeC)
	}
	return nil
}
