package cpu

import (
	"math"
	"testing"
)

// TestGemm checks every transpose combination against a naive product.
func TestGemm(t *testing.T) {
	m, n, k := 3, 4, 5
	a := make([]float64, m*k)
	b := make([]float64, k*n)
	for i := range a {
		a[i] = float64(i%7) - 3
	}
	for i := range b {
		b[i] = float64(i%5) - 2
	}
	at := func(x []float64, rows, cols, i, j int, tr bool) float64 {
		if tr {
			return x[j*rows+i]
		}
		return x[i*cols+j]
	}
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			lda, ldb := k, n
			if ta {
				lda = m
			}
			if tb {
				ldb = k
			}
			c := make([]float64, m*n)
			for i := range c {
				c[i] = 1
			}
			c32 := make([]float32, m*n)
			for i := range c32 {
				c32[i] = 1
			}
			a32, b32 := make([]float32, len(a)), make([]float32, len(b))
			for i := range a {
				a32[i] = float32(a[i])
			}
			for i := range b {
				b32[i] = float32(b[i])
			}
			Gemm(ta, tb, m, n, k, 2, a, lda, b, ldb, 0.5, c, n)
			Gemm(ta, tb, m, n, k, 2, a32, lda, b32, ldb, 0.5, c32, n)
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					want := 0.5
					for p := 0; p < k; p++ {
						want += 2 * at(a, m, k, i, p, ta) * at(b, k, n, p, j, tb)
					}
					if math.Abs(c[i*n+j]-want) > 1e-12 || math.Abs(float64(c32[i*n+j])-want) > 1e-4 {
						t.Fatalf("transA=%v transB=%v C[%d,%d] = %v / %v, want %v", ta, tb, i, j, c[i*n+j], c32[i*n+j], want)
					}
				}
			}
		}
	}
}
