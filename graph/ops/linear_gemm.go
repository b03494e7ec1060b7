package ops

import "sync"

// linearGEMM is a GEMM split across the worker pool by blocks of rows of C
// (or of columns, when C has few rows), each worker calling a single-threaded
// BLAS. The fully connected layers use it instead of letting OpenBLAS thread
// the call itself: OpenBLAS's own threads spin for about 0.1 s after each
// multi-threaded call, taking cores from the pool's workers in the
// convolutions that follow; with every GEMM of a network on the pool they
// never wake.
type linearGEMM[T Float] struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    T
	a, b, c        []T
	lda, ldb, ldc  int
	byCols         bool
	blocks, block  int
}

// linearGEMMMinBlock is the fewest rows (or columns) of C a worker gets.
const linearGEMMMinBlock = 16

// do computes C = alpha·op(A)·op(B) + beta·C (row-major, as gemm) with t's
// storage and wg, on as many workers as the size pays for.
func (t *linearGEMM[T]) do(wg *sync.WaitGroup, transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	*t = linearGEMM[T]{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta,
		a: a, b: b, c: c, lda: lda, ldb: ldb, ldc: ldc}
	t.byCols = m < 2*linearGEMMMinBlock && n > m
	span := m
	if t.byCols {
		span = n
	}
	workers := convWorkers(max(1, span/linearGEMMMinBlock), float64(m)*float64(n)*float64(k))
	if workers <= 1 {
		// one worker: let the BLAS thread the call as it sees fit
		gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		*t = linearGEMM[T]{}
		return
	}
	t.blocks = workers
	t.block = (span + workers - 1) / workers
	convParallel(t, wg, workers, workers, true)
	*t = linearGEMM[T]{}
}

func (t *linearGEMM[T]) run(_, lo, hi int) {
	for blk := lo; blk < hi; blk++ {
		if t.byCols {
			c0 := blk * t.block
			c1 := min(c0+t.block, t.n)
			if c0 >= c1 {
				continue
			}
			var b []T // column c0 of op(B): column c0 of B, or row c0 of Bᵀ
			if t.transB {
				b = t.b[c0*t.ldb:]
			} else {
				b = t.b[c0:]
			}
			gemm(t.transA, t.transB, t.m, c1-c0, t.k, t.alpha, t.a, t.lda, b, t.ldb, t.beta, t.c[c0:], t.ldc)
			continue
		}
		r0 := blk * t.block
		r1 := min(r0+t.block, t.m)
		if r0 >= r1 {
			continue
		}
		var a []T // row r0 of op(A): row r0 of A, or column r0 of Aᵀ
		if t.transA {
			a = t.a[r0:]
		} else {
			a = t.a[r0*t.lda:]
		}
		gemm(t.transA, t.transB, r1-r0, t.n, t.k, t.alpha, a, t.lda, t.b, t.ldb, t.beta, t.c[r0*t.ldc:], t.ldc)
	}
}
