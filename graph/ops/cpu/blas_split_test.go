package cpu

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestGEMMSplit checks the pool-split GEMM against one GEMM call for every
// transpose combination, split whatever the size.
func TestGEMMSplit(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(9, 9))
	m, n, k := 96, 130, 70
	rnd := func(size int) []float32 {
		v := make([]float32, size)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			a, b := rnd(m*k), rnd(k*n)
			lda, ldb := k, n
			if ta {
				lda = m
			}
			if tb {
				ldb = k
			}
			want, got := rnd(m*n), make([]float32, m*n)
			copy(got, want)
			Gemm(ta, tb, m, n, k, 1, a, lda, b, ldb, 0.5, want, n)
			var task GemmTask[float32]
			var wg sync.WaitGroup
			GemmSplit(&task, &wg, 0, ta, tb, m, n, k, 1, a, lda, b, ldb, 0.5, got, n)
			for i := range got {
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("transA=%v transB=%v: element %d is %v, want %v", ta, tb, i, got[i], want[i])
				}
			}
		}
	}
}
