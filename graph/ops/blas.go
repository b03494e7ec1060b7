package ops

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
