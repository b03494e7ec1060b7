package ops

import (
	"fmt"
	"math"

	"gorgonia.org/gorgonia"
)

// Batch-norm statistics collected by the convolution before it (training
// fusion, graph/fuse_train.go). Batch norm's training forward otherwise
// makes a pass over its whole input for the mean and variance before the
// pass that writes its output; at ResNet-110's depth both read the
// activation from memory. The convolution computes the same shifted sums
// per image while each image's output is still in cache, and the batch
// norm combines them per channel instead of making the first pass.
//
// Batch norm's own pass sums d = x - k and d² in float64 with d rounded to
// float32 (k: the channel's first value, in image 0). Here each image i
// has its own shift k_i (its plane's first value), and the sums are moved
// to batch norm's shift K = k_0 exactly in float64:
//
//	Σ(x-K) = Σ_i [s1_i + m(k_i-K)],  Σ(x-K)² = Σ_i [s2_i + 2(k_i-K)s1_i + m(k_i-K)²]
//
// (m pixels per plane). The two differ only in the float32 rounding of
// each d (x - k_i against x - K, each off by at most 2^-24 |d|, |d| <= 2R
// with R the channel's largest |x - K|), not in their bits. Against the
// float64 statistics of the same float32 values both are within
//
//	|mean - exact| <= 2^-23 R,  |var - exact| <= 2^-20 R²
//
// (the d² terms 2^-21 R², the mean's error squared in 2^-22 R²), which
// TestConvBatchStats checks on every kernel path.

// convStats is what a convolution hands the batch norm that reads its
// output: per image i and channel c (index i*c + c), the shift k and the
// float64 sums s1 = Σ(y-k), s2 = Σ(y-k)² over the plane of m pixels.
type convStats struct {
	mode      *Mode // the batch norm's: statistics are collected in training only
	simd      bool  // float32 sums by the AVX-512 kernel
	n, c, m   int
	k, s1, s2 []float64
	fresh     bool // set by the convolution's run, cleared by the batch norm that uses it
}

// size makes room for n images of c channels of m pixels.
func (s *convStats) size(n, c, m int) {
	s.n, s.c, s.m = n, c, m
	s.k = normGrow(s.k, n*c)
	s.s1 = normGrow(s.s1, n*c)
	s.s2 = normGrow(s.s2, n*c)
}

// convCollectStats sums planes [i0, i0+np) (plane i = image i/c, channel
// i%c) of y, m pixels each, stored from y[0] on.
func convCollectStats[T Float](s *convStats, y []T, i0, np int) {
	if y32, ok := any(y).([]float32); ok && s.simd {
		simdMoments32(y32[:np*s.m], np, s.m, s.k[i0:i0+np], s.s1[i0:i0+np], s.s2[i0:i0+np])
		return
	}
	for j := 0; j < np; j++ {
		p := y[j*s.m : (j+1)*s.m]
		s.k[i0+j] = float64(p[0])
		s.s1[i0+j], s.s2[i0+j] = bnMoments(p, p[0])
	}
}

// moments returns the mean and biased variance of channel c from the
// collected sums (see above).
func (s *convStats) moments(c int) (mean, v float64) {
	K := s.k[c]
	m := float64(s.m)
	var s1, s2 float64
	for i := 0; i < s.n; i++ {
		j := i*s.c + c
		dk := s.k[j] - K
		s1 += s.s1[j] + m*dk
		s2 += s.s2[j] + 2*dk*s.s1[j] + m*dk*dk
	}
	cnt := float64(s.n) * m
	dm := s1 / cnt
	v = s2/cnt - dm*dm
	if v < 0 {
		v = 0
	}
	return K + dm, v
}

// FuseConvBatchStats makes the convolution conv collect, in training mode,
// the batch statistics the batch norm bn (whose input is conv's output)
// needs, so that bn skips its statistics pass. The caller ensures nothing
// writes over conv's output between the two (graph/fuse_train.go).
func FuseConvBatchStats(conv, bn *gorgonia.Node) error {
	cop, ok := conv.Op().(*Conv2DOp)
	if !ok {
		return fmt.Errorf("fuse: %v is not a convolution", conv)
	}
	bop, ok := bn.Op().(*BatchNormOp)
	if !ok {
		return fmt.Errorf("fuse: %v is not a batch norm", bn)
	}
	if in := Inputs(bn); len(in) == 0 || in[0] != conv {
		return fmt.Errorf("fuse: %v does not normalise %v", bn, conv)
	}
	if bop.rank != 4 {
		return fmt.Errorf("fuse: %v normalises rank %d, want 4", bn, bop.rank)
	}
	s := &convStats{mode: bop.mode}
	cop.stats, bop.convStats = s, s
	return nil
}

// batchStatsFromConv fills op.mean, op.bvar and op.invstd from the
// statistics its convolution collected for x of n images, c channels and
// inner pixels, and reports whether there were such statistics (collected
// by this run, of this shape).
func (op *BatchNormOp) batchStatsFromConv(n, c, inner int) bool {
	s := op.convStats
	if s == nil || !s.fresh || s.n != n || s.c != c || s.m != inner {
		return false
	}
	s.fresh = false
	for k := 0; k < c; k++ {
		mean, v := s.moments(k)
		op.mean[k], op.bvar[k], op.invstd[k] = mean, v, 1/math.Sqrt(v+op.eps)
	}
	return true
}
