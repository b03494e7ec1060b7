//go:build !purego && amd64

// Element-wise and batch-norm float32 kernels for AVX-512
// (elementwise_avx512.h). Without FMA contraction each element sees the
// operations of the Go kernel in the same order: ReLU, add, the batch-norm output and input
// gradient give the Go kernels' bits; the float64 sums of the batch-norm
// statistics and parameter gradients are added in another order.

// Separate multiplies and adds as written, as the Go kernels do (no FMA
// contraction): results equal theirs wherever the order of operations is.
#pragma GCC optimize("fp-contract=off")

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include "elementwise_avx512.h"

#define KERNEL __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma")))

static inline KERNEL __mmask16 tail(int64_t left) {
	return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}

KERNEL void eraserelu_relu_f32(float *y, const float *x, int64_t n) {
	const __m512 zero = _mm512_setzero_ps();
	int64_t i = 0;
	for (; i + 64 <= n; i += 64) {
		// max(v, 0) returns its second operand, 0, for NaN and -0
		__m512 a = _mm512_max_ps(_mm512_loadu_ps(x + i), zero);
		__m512 b = _mm512_max_ps(_mm512_loadu_ps(x + i + 16), zero);
		__m512 c = _mm512_max_ps(_mm512_loadu_ps(x + i + 32), zero);
		__m512 d = _mm512_max_ps(_mm512_loadu_ps(x + i + 48), zero);
		_mm512_storeu_ps(y + i, a);
		_mm512_storeu_ps(y + i + 16, b);
		_mm512_storeu_ps(y + i + 32, c);
		_mm512_storeu_ps(y + i + 48, d);
	}
	for (; i < n; i += 16) {
		__mmask16 m = tail(n - i);
		_mm512_mask_storeu_ps(y + i, m, _mm512_max_ps(_mm512_maskz_loadu_ps(m, x + i), zero));
	}
}

KERNEL void eraserelu_relu_grad_f32(float *dx, const float *y, const float *dy, int64_t n) {
	const __m512 zero = _mm512_setzero_ps();
	for (int64_t i = 0; i < n; i += 16) {
		__mmask16 m = tail(n - i);
		__mmask16 pos = _mm512_mask_cmp_ps_mask(m, _mm512_maskz_loadu_ps(m, y + i), zero, _CMP_GT_OQ);
		_mm512_mask_storeu_ps(dx + i, m, _mm512_maskz_loadu_ps(pos, dy + i));
	}
}

// rectified applies the rectifier when relu is set: max(v, 0) returns its
// second operand, +0, for NaN and -0, as eraserelu_relu_f32 does.
static inline KERNEL __m512 rectified(__m512 v, int relu) {
	return relu ? _mm512_max_ps(v, _mm512_setzero_ps()) : v;
}

KERNEL void eraserelu_add_f32(float *y, const float *a, const float *b, int64_t n, int relu) {
	int64_t i = 0;
	for (; i + 32 <= n; i += 32) {
		__m512 s0 = _mm512_add_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
		__m512 s1 = _mm512_add_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
		_mm512_storeu_ps(y + i, rectified(s0, relu));
		_mm512_storeu_ps(y + i + 16, rectified(s1, relu));
	}
	for (; i < n; i += 16) {
		__mmask16 m = tail(n - i);
		__m512 s = _mm512_add_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
		_mm512_mask_storeu_ps(y + i, m, rectified(s, relu));
	}
}

// sum16 adds the 8 float64 lanes of a and b.
static inline KERNEL double sum8x2(__m512d a, __m512d b) { return _mm512_reduce_add_pd(_mm512_add_pd(a, b)); }

static inline KERNEL __m512d lo_pd(__m512 v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
static inline KERNEL __m512d hi_pd(__m512 v) { return _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)); }

// moments_acc adds the d = p[i] - k (kv: k in every lane, d rounded to
// float32) of p[0..m) to the float64 sums a[0], a[1] (low and high lanes)
// and their squares to a[2], a[3].
static inline KERNEL void moments_acc(const float *p, int64_t m, __m512 kv, __m512d a[4]) {
	for (int64_t i = 0; i < m; i += 16) {
		__mmask16 mk = tail(m - i);
		// lanes past the end read as k, adding 0 to both sums
		__m512 d = _mm512_sub_ps(_mm512_mask_loadu_ps(kv, mk, p + i), kv);
		__m512d dl = lo_pd(d), dh = hi_pd(d);
		a[0] = _mm512_add_pd(a[0], dl);
		a[1] = _mm512_add_pd(a[1], dh);
		a[2] = _mm512_add_pd(a[2], _mm512_mul_pd(dl, dl));
		a[3] = _mm512_add_pd(a[3], _mm512_mul_pd(dh, dh));
	}
}

KERNEL void eraserelu_bn_fwd_f32(const float *x, float *y, const float *gamma, const float *beta,
	double *mean, double *invstd, double *bvar, int64_t n, int64_t c, int64_t inner,
	const float *res, double eps, int stats, int relu, int64_t lo, int64_t hi) {
	int64_t stride = c * inner;
	for (int64_t k = lo; k < hi; k++) {
		if (stats) {
			float k0 = x[k * inner];
			__m512 kv = _mm512_set1_ps(k0);
			__m512d a[4] = {_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd()};
			for (int64_t j = 0; j < n; j++) moments_acc(x + j * stride + k * inner, inner, kv, a);
			__m512d a0 = a[0], a1 = a[1], b0 = a[2], b1 = a[3];
			double cnt = (double)(n * inner);
			double dm = sum8x2(a0, a1) / cnt;
			double v = sum8x2(b0, b1) / cnt - dm * dm;
			if (v < 0) v = 0;
			mean[k] = (double)k0 + dm;
			bvar[k] = v;
			invstd[k] = 1 / sqrt(v + eps);
		}
		__m512 mv = _mm512_set1_ps((float)mean[k]);
		__m512 sv = _mm512_set1_ps((float)((double)gamma[k] * invstd[k]));
		__m512 tv = _mm512_set1_ps(beta[k]);
		for (int64_t j = 0; j < n; j++) {
			const float *p = x + j * stride + k * inner;
			float *q = y + j * stride + k * inner;
			const float *s = res ? res + j * stride + k * inner : 0;
			for (int64_t i = 0; i < inner; i += 16) {
				__mmask16 m = tail(inner - i);
				__m512 r = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, p + i), mv), sv), tv);
				if (s) {
					r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, s + i));
				}
				_mm512_mask_storeu_ps(q + i, m, rectified(r, relu));
			}
		}
	}
}

KERNEL void eraserelu_bn_red_f32(const float *x, float *dy, const float *relu_out, float *red, const double *mean,
	const double *invstd, int64_t n, int64_t c, int64_t inner, int64_t lo, int64_t hi) {
	const __m512 zero = _mm512_setzero_ps();
	int64_t stride = c * inner;
	for (int64_t k = lo; k < hi; k++) {
		__m512 mv = _mm512_set1_ps((float)mean[k]);
		__m512d a0 = _mm512_setzero_pd(), a1 = a0, b0 = a0, b1 = a0;
		for (int64_t j = 0; j < n; j++) {
			const float *p = x + j * stride + k * inner;
			float *g = dy + j * stride + k * inner;
			for (int64_t i = 0; i < inner; i += 16) {
				__mmask16 m = tail(inner - i);
				__m512 gv;
				if (relu_out) {
					// eraserelu_relu_grad_f32 in place: +0 where the output is not > 0
					__mmask16 pos = _mm512_mask_cmp_ps_mask(m, _mm512_maskz_loadu_ps(m, relu_out + j * stride + k * inner + i), zero, _CMP_GT_OQ);
					gv = _mm512_maskz_loadu_ps(pos, g + i);
					_mm512_mask_storeu_ps(g + i, m, gv);
				} else {
					gv = _mm512_maskz_loadu_ps(m, g + i);
				}
				__m512 t = _mm512_mul_ps(gv, _mm512_sub_ps(_mm512_maskz_loadu_ps(m, p + i), mv));
				a0 = _mm512_add_pd(a0, lo_pd(gv));
				a1 = _mm512_add_pd(a1, hi_pd(gv));
				b0 = _mm512_add_pd(b0, lo_pd(t));
				b1 = _mm512_add_pd(b1, hi_pd(t));
			}
		}
		red[k] = (float)(sum8x2(b0, b1) * invstd[k]);
		red[c + k] = (float)sum8x2(a0, a1);
	}
}

KERNEL void eraserelu_bn_dx_f32(const float *x, const float *gamma, const float *dy, const float *red,
	float *dx, const double *mean, const double *invstd, int64_t n, int64_t c, int64_t inner,
	int batch, int64_t lo, int64_t hi) {
	int64_t stride = c * inner;
	double m = (double)(n * inner);
	for (int64_t k = lo; k < hi; k++) {
		double g = (double)gamma[k] * invstd[k];
		double b = 0, c0 = 0;
		if (batch) {
			b = -g * invstd[k] * (double)red[k] / m;
			c0 = -g * (double)red[c + k] / m;
		}
		__m512 gt = _mm512_set1_ps((float)g), bt = _mm512_set1_ps((float)b), ct = _mm512_set1_ps((float)c0);
		__m512 mv = _mm512_set1_ps((float)mean[k]);
		for (int64_t j = 0; j < n; j++) {
			const float *p = x + j * stride + k * inner;
			const float *g2 = dy + j * stride + k * inner;
			float *q = dx + j * stride + k * inner;
			for (int64_t i = 0; i < inner; i += 16) {
				__mmask16 mk = tail(inner - i);
				__m512 t = _mm512_add_ps(_mm512_mul_ps(gt, _mm512_maskz_loadu_ps(mk, g2 + i)),
					_mm512_mul_ps(bt, _mm512_sub_ps(_mm512_maskz_loadu_ps(mk, p + i), mv)));
				_mm512_mask_storeu_ps(q + i, mk, _mm512_add_ps(t, ct));
			}
		}
	}
}

KERNEL void eraserelu_moments_f32(const float *y, int64_t np, int64_t m, double *k, double *s1, double *s2) {
	for (int64_t j = 0; j < np; j++) {
		const float *p = y + j * m;
		__m512d a[4] = {_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd()};
		moments_acc(p, m, _mm512_set1_ps(p[0]), a);
		k[j] = (double)p[0];
		s1[j] = sum8x2(a[0], a[1]);
		s2[j] = sum8x2(a[2], a[3]);
	}
}
