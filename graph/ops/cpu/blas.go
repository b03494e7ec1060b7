// Package cpu holds the machinery under the CPU kernels of package ops: the
// BLAS binding (OpenBLAS through cgo; gonum's pure-Go BLAS under the purego
// build tag) and the worker pool every parallel kernel runs on, with the
// guard that keeps OpenBLAS single-threaded while the pool's workers each
// run their own GEMMs. What kernels a program runs is configured in ops
// (ops.Kernels); this package holds no configuration.
package cpu

import "sync"

// Float is the set of element types every kernel is written for.
type Float interface{ ~float32 | ~float64 }

// Gemm computes C = alpha*op(A)*op(B) + beta*C on row-major matrices, where
// op(A) is m x k and op(B) is k x n. It is the one entry point of the kernels
// into BLAS; the implementation (OpenBLAS through cgo by default, gonum's
// pure-Go BLAS under the purego build tag) is chosen in blas_*.go.
func Gemm[T Float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	switch cs := any(c).(type) {
	case []float32:
		sgemm(transA, transB, m, n, k, float32(alpha), any(a).([]float32), lda, any(b).([]float32), ldb, float32(beta), cs, ldc)
	case []float64:
		dgemm(transA, transB, m, n, k, float64(alpha), any(a).([]float64), lda, any(b).([]float64), ldb, float64(beta), cs, ldc)
	}
}

// GemmTask is one GEMM whose rows of C a pool worker computes in part; an
// op keeps one so that splitting a GEMM allocates nothing.
type GemmTask[T Float] struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    T
	a, b, c        []T
	lda, ldb, ldc  int
}

// Run computes rows [lo, hi) of C (Task).
func (t *GemmTask[T]) Run(_, lo, hi int) {
	var a []T
	if t.transA {
		a = t.a[lo:] // op(A) = Aᵀ: its rows are A's columns
	} else {
		a = t.a[lo*t.lda:]
	}
	Gemm(t.transA, t.transB, hi-lo, t.n, t.k, t.alpha, a, t.lda, t.b, t.ldb, t.beta, t.c[lo*t.ldc:], t.ldc)
}

// GemmSplit is Gemm with the m rows of C split over the worker pool, each
// worker calling a single-threaded GEMM, when the product is at least
// minWork multiply-adds (as the convolutions do). Letting OpenBLAS thread
// such calls itself left its threads spinning afterwards, taking a core
// from the next kernels.
func GemmSplit[T Float](t *GemmTask[T], wg *sync.WaitGroup, minWork float64, transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	workers := Workers(m/8, float64(m)*float64(n)*float64(k), minWork)
	if workers <= 1 {
		Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	*t = GemmTask[T]{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta,
		a: a, b: b, c: c, lda: lda, ldb: ldb, ldc: ldc}
	Parallel(t, wg, workers, m, true)
	*t = GemmTask[T]{}
}
