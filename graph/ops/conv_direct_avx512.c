//go:build !purego && amd64

// Direct float32 convolution kernels for AVX-512 (conv_direct.h). They are
// compiled for AVX-512 whatever the build machine, and the Go side calls
// them only when eraserelu_conv_direct_ok says the CPU runs them.

// Separate multiplies and adds as written, as the Go kernels do (no FMA
// contraction): results equal theirs wherever the order of operations is.
#pragma GCC optimize("fp-contract=off")

#include <immintrin.h>
#include <stdint.h>
#include "conv_direct.h"

#define KERNEL __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma")))
#define INLINE static inline __attribute__((always_inline))

int eraserelu_conv_direct_ok(void) {
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
		__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
}

// Filters per register tile of the forward kernel; the packed filters hold
// FWD_FB consecutive filters of one (channel, tap) side by side.
#define FWD_FB 8

// fwd_tile computes vectors v0..v0+V-1 (16 pixels each) of filters
// fb*FWD_FB.. of the output: FWD_FB*V accumulators in registers, a loop over
// channels and taps with V masked loads and FWD_FB broadcasts each.
KERNEL INLINE void fwd_tile(const int V, int v0, int fb, const float *x, int64_t cstride, int C,
	int KK, const int64_t *tapoff, const uint16_t *mask, const float *wp, int F, float *y,
	int64_t ldy, int P, const float *scale, const float *shift, const float *res, int64_t ldres,
	int relu) {
	__m512 acc[FWD_FB][4];
#pragma GCC unroll 8
	for (int f = 0; f < FWD_FB; f++) {
#pragma GCC unroll 4
		for (int v = 0; v < V; v++) acc[f][v] = _mm512_setzero_ps();
	}
	const float *wf = wp + (int64_t)fb * C * KK * FWD_FB;
	const uint16_t *mk = mask + (int64_t)v0 * KK;
	for (int c = 0; c < C; c++) {
		const float *xc = x + c * cstride + (int64_t)v0 * 16;
		const float *wc = wf + (int64_t)c * KK * FWD_FB;
		for (int t = 0; t < KK; t++) {
			__m512 xv[4];
			const float *xt = xc + tapoff[t];
#pragma GCC unroll 4
			for (int v = 0; v < V; v++) xv[v] = _mm512_maskz_loadu_ps(mk[v * KK + t], xt + v * 16);
			const float *wt = wc + t * FWD_FB;
#pragma GCC unroll 8
			for (int f = 0; f < FWD_FB; f++) {
				__m512 wb = _mm512_set1_ps(wt[f]);
#pragma GCC unroll 4
				for (int v = 0; v < V; v++) acc[f][v] = _mm512_fmadd_ps(wb, xv[v], acc[f][v]);
			}
		}
	}
	const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 4
	for (int v = 0; v < V; v++) {
		int p = (v0 + v) * 16;
		__mmask16 m = P - p >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (P - p)) - 1);
#pragma GCC unroll 8
		for (int f = 0; f < FWD_FB; f++) {
			int ff = fb * FWD_FB + f;
			if (ff >= F) break;
			__m512 r = acc[f][v];
			if (scale) r = _mm512_mul_ps(r, _mm512_set1_ps(scale[ff]));
			if (shift) r = _mm512_add_ps(r, _mm512_set1_ps(shift[ff]));
			if (res) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, res + ff * ldres + p));
			// max(r, 0) returns its second operand, 0, for NaN: as reluMask32
			if (relu) r = _mm512_max_ps(r, zero);
			_mm512_mask_storeu_ps(y + ff * ldy + p, m, r);
		}
	}
}

// The number of 16-pixel vectors per forward register tile.
#define FWD_V 3

KERNEL void eraserelu_conv_fwd_f32(const float *x, int64_t cstride, int C, int KK,
	const int64_t *tapoff, const uint16_t *mask, const float *wp, int F, float *y, int64_t ldy,
	int P, const float *scale, const float *shift, const float *res, int64_t ldres, int relu) {
	int nvec = (P + 15) / 16;
	int nfb = (F + FWD_FB - 1) / FWD_FB;
	int v0 = 0;
	for (; v0 + FWD_V <= nvec; v0 += FWD_V) {
		for (int fb = 0; fb < nfb; fb++)
			fwd_tile(FWD_V, v0, fb, x, cstride, C, KK, tapoff, mask, wp, F, y, ldy, P, scale,
				shift, res, ldres, relu);
	}
	for (; v0 + 2 <= nvec; v0 += 2) {
		for (int fb = 0; fb < nfb; fb++)
			fwd_tile(2, v0, fb, x, cstride, C, KK, tapoff, mask, wp, F, y, ldy, P, scale, shift,
				res, ldres, relu);
	}
	for (; v0 < nvec; v0++) {
		for (int fb = 0; fb < nfb; fb++)
			fwd_tile(1, v0, fb, x, cstride, C, KK, tapoff, mask, wp, F, y, ldy, P, scale, shift,
				res, ldres, relu);
	}
}

// Filters per register tile of the filter-gradient kernel.
#define WG_FB 3

// wgrad_tile accumulates taps t0..t0+TB-1 of filters fb*WG_FB.. and channel
// c over all pixels of nimg images: WG_FB*TB accumulators, a loop over the
// pixel vectors with WG_FB loads of dy and TB masked loads of x each; the
// 16 lanes of each accumulator are summed into its partial sum in acc.
KERNEL INLINE void wgrad_tile(const int TB, int t0, int fb, int c, const float *x, int64_t ximg,
	int64_t cstride, int C, int KK, const int64_t *tapoff, const uint16_t *mask, const float *dy,
	int64_t dyimg, int64_t lddy, int F, int P, int nimg, float *acc) {
	__m512 a[WG_FB][9];
#pragma GCC unroll 9
	for (int t = 0; t < TB; t++) {
#pragma GCC unroll 4
		for (int f = 0; f < WG_FB; f++) a[f][t] = _mm512_setzero_ps();
	}
	int nvec = (P + 15) / 16;
	// rows of dy of the block's filters; past the last filter, the last
	// one again (its sums are dropped)
	int64_t drow[WG_FB];
#pragma GCC unroll 4
	for (int f = 0; f < WG_FB; f++) drow[f] = (fb * WG_FB + f < F ? fb * WG_FB + f : F - 1) * lddy;
	__mmask16 mlast = (__mmask16)(P % 16 == 0 ? 0xFFFF : (1u << (P % 16)) - 1);
	for (int im = 0; im < nimg; im++) {
		const float *xc = x + im * ximg + c * cstride;
		const float *dyi = dy + im * dyimg;
		for (int j = 0; j < nvec; j++) {
			int p = j * 16;
			__mmask16 m = j == nvec - 1 ? mlast : (__mmask16)0xFFFF;
			__m512 d[WG_FB];
#pragma GCC unroll 4
			for (int f = 0; f < WG_FB; f++) d[f] = _mm512_maskz_loadu_ps(m, dyi + drow[f] + p);
			const uint16_t *mk = mask + (int64_t)j * KK + t0;
#pragma GCC unroll 9
			for (int t = 0; t < TB; t++) {
				__m512 xv = _mm512_maskz_loadu_ps(mk[t], xc + tapoff[t0 + t] + p);
#pragma GCC unroll 4
				for (int f = 0; f < WG_FB; f++) a[f][t] = _mm512_fmadd_ps(d[f], xv, a[f][t]);
			}
		}
	}
#pragma GCC unroll 4
	for (int f = 0; f < WG_FB; f++) {
		if (fb * WG_FB + f >= F) break;
		float *row = acc + ((int64_t)(fb * WG_FB + f) * C + c) * KK + t0;
#pragma GCC unroll 9
		for (int t = 0; t < TB; t++) row[t] += _mm512_reduce_add_ps(a[f][t]);
	}
}

#define WG_TILE(TB)                                                                               \
	case TB:                                                                                  \
		wgrad_tile(TB, t0, fb, c, x, ximg, cstride, C, KK, tapoff, mask, dy, dyimg, lddy, F, P, \
			nimg, acc);                                                               \
		break;

KERNEL void eraserelu_conv_wgrad_f32(const float *x, int64_t ximg, int64_t cstride, int C, int KK,
	const int64_t *tapoff, const uint16_t *mask, const float *dy, int64_t dyimg, int64_t lddy,
	int F, int P, int nimg, float *acc) {
	int nfb = (F + WG_FB - 1) / WG_FB;
	for (int fb = 0; fb < nfb; fb++) {
		for (int c = 0; c < C; c++) {
			for (int t0 = 0; t0 < KK; t0 += 9) {
				switch (KK - t0 < 9 ? KK - t0 : 9) {
					WG_TILE(1)
					WG_TILE(2)
					WG_TILE(3)
					WG_TILE(4)
					WG_TILE(5)
					WG_TILE(6)
					WG_TILE(7)
					WG_TILE(8)
					WG_TILE(9)
				}
			}
		}
	}
}

// interleave2 writes dst[2j] = e[j] (2j < w) and dst[2j+1] = o[j] (2j+1 < w):
// one row of an input plane from its two column phases.
KERNEL INLINE void interleave2(float *dst, const float *e, const float *o, int w) {
	const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
	const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
	int j = 0;
	for (; 2 * j + 32 <= w; j += 16) {
		__m512 ev = _mm512_loadu_ps(e + j), ov = _mm512_loadu_ps(o + j);
		_mm512_storeu_ps(dst + 2 * j, _mm512_permutex2var_ps(ev, lo, ov));
		_mm512_storeu_ps(dst + 2 * j + 16, _mm512_permutex2var_ps(ev, hi, ov));
	}
	for (; 2 * j < w; j++) {
		dst[2 * j] = e[j];
		if (2 * j + 1 < w) dst[2 * j + 1] = o[j];
	}
}

KERNEL void eraserelu_merge_phases2_f32(float *dx, const float *src, int C, int H, int W, int ld) {
	int64_t P = (int64_t)((H + 1) / 2) * ld;
	for (int a = 0; a < 2; a++) {
		const float *e = src + (int64_t)(a * 2) * C * P, *o = src + (int64_t)(a * 2 + 1) * C * P;
		for (int c = 0; c < C; c++) {
			for (int r = 0, ih = a; ih < H; r++, ih += 2)
				interleave2(dx + ((int64_t)c * H + ih) * W, e + c * P + (int64_t)r * ld,
					o + c * P + (int64_t)r * ld, W);
		}
	}
}
