package ops

import "sync"

// gemm computes C = alpha*op(A)*op(B) + beta*C on row-major matrices, where
// op(A) is m x k and op(B) is k x n. It is the one entry point of the kernels
// into BLAS; the implementation (OpenBLAS through cgo by default, gonum's
// pure-Go BLAS under the purego build tag) is chosen in blas_*.go.
func gemm[T Float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
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

// gemmTask is one GEMM whose rows of C a pool worker computes in part.
type gemmTask[T Float] struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    T
	a, b, c        []T
	lda, ldb, ldc  int
}

// gemms holds an op's GEMM tasks, so that splitting one allocates nothing.
type gemms struct {
	g32 gemmTask[float32]
	g64 gemmTask[float64]
	wg  sync.WaitGroup
}

func (t *gemmTask[T]) run(_, lo, hi int) {
	var a []T
	if t.transA {
		a = t.a[lo:] // op(A) = Aᵀ: its rows are A's columns
	} else {
		a = t.a[lo*t.lda:]
	}
	gemm(t.transA, t.transB, hi-lo, t.n, t.k, t.alpha, a, t.lda, t.b, t.ldb, t.beta, t.c[lo*t.ldc:], t.ldc)
}

// gemmSplit is gemm with the m rows of C split over the worker pool, each
// worker calling a single-threaded GEMM, when the product is large enough
// (as the convolutions do). Letting OpenBLAS thread such calls itself left
// its threads spinning afterwards, taking a core from the next kernels.
func gemmSplit[T Float](t *gemmTask[T], wg *sync.WaitGroup, kern *Kernels, transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	workers := convWorkers(m/8, float64(m)*float64(n)*float64(k), kern)
	if workers <= 1 {
		gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	*t = gemmTask[T]{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta,
		a: a, b: b, c: c, lda: lda, ldb: ldb, ldc: ldc}
	convParallel(t, wg, workers, m, true)
	*t = gemmTask[T]{}
}
