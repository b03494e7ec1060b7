//go:build !purego && amd64

// Winograd F(2x2, 3x3) float32 convolution for AVX-512 (conv_direct.h):
// 3x3, stride 1, padding 1, planes 8, 16 or 32 wide. The output is cut into
// 2x2 tiles, 16 tiles per vector (lanes are tiles: a 16-tile row of a
// 32-wide plane, two 8-tile rows of a 16-wide one, four 4-tile rows of an
// 8-wide one). Per channel and vector of tiles, the 4x4 inputs of the tiles
// are transformed, V = B^T d B; per transformed position (16 of them) a
// GEMM over channels, M = U V with the transformed filters U = G g G^T;
// per filter and vector, Y = A^T M A gives the 2x2 outputs, which the
// epilogue scales, shifts, adds the residual to and rectifies before the
// store. 16 multiplies per 4 outputs and channel instead of 36.

// Separate multiplies and adds as written (no FMA contraction).
#pragma GCC optimize("fp-contract=off")

#include <immintrin.h>
#include <stdint.h>
#include "conv_direct.h"
#include "elementwise_avx512.h"

#define KERNEL __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma")))
#define INLINE static inline __attribute__((always_inline))

// The lanes of the virtual 32 elements (A, B) a vector of tiles reads in
// one row r of their 4x4 inputs, or writes in one row u of their 2x2
// outputs, are the row's elements 2*lane (even) and 2*lane + 1 (odd): for
// a 32-wide plane A and B are the two halves of the row, for a 16-wide one
// two rows 2 apart, for an 8-wide one four rows 2 apart, two per vector.

// wino_rows loads the virtual 32 elements of input row r (relative row
// 2*ty + r - 1 of the tiles' first tile row ty) of plane x, zero outside.
KERNEL INLINE void wino_rows(const float *x, int H, int W, int ty, int r, __m512 *a, __m512 *b) {
	int row = 2 * ty + r - 1;
	switch (W) {
	case 32: {
		__mmask16 m = row >= 0 && row < H ? 0xFFFF : 0;
		*a = _mm512_maskz_loadu_ps(m, x + row * 32);
		*b = _mm512_maskz_loadu_ps(m, x + row * 32 + 16);
		return;
	}
	case 16: {
		__mmask16 m0 = row >= 0 && row < H ? 0xFFFF : 0;
		__mmask16 m1 = row + 2 >= 0 && row + 2 < H ? 0xFFFF : 0;
		*a = _mm512_maskz_loadu_ps(m0, x + row * 16);
		*b = _mm512_maskz_loadu_ps(m1, x + (row + 2) * 16);
		return;
	}
	default: { // 8
		__m256 q[4];
		for (int k = 0; k < 4; k++) {
			int rk = row + 2 * k;
			__mmask8 m = rk >= 0 && rk < H ? 0xFF : 0;
			q[k] = _mm256_maskz_loadu_ps(m, x + rk * 8);
		}
		*a = _mm512_insertf32x8(_mm512_castps256_ps512(q[0]), q[1], 1);
		*b = _mm512_insertf32x8(_mm512_castps256_ps512(q[2]), q[3], 1);
		return;
	}
	}
}

// wino_store writes the virtual 32 elements (a, b) of output row u of the
// tiles to plane y with the epilogue of filter f.
KERNEL INLINE void wino_store(float *y, const float *res, int W, int ty, int u, __m512 a, __m512 b,
	__m512 sc, __m512 sh, int has_scale, int has_shift, int relu) {
	int row = 2 * ty + u;
	const __m512 zero = _mm512_setzero_ps();
	float *p0, *p1;
	const float *r0, *r1;
	switch (W) {
	case 32:
		p0 = y + row * 32, p1 = p0 + 16;
		r0 = res ? res + row * 32 : 0, r1 = res ? r0 + 16 : 0;
		break;
	case 16:
		p0 = y + row * 16, p1 = y + (row + 2) * 16;
		r0 = res ? res + row * 16 : 0, r1 = res ? res + (row + 2) * 16 : 0;
		break;
	default: // 8: a holds rows row, row+2; b rows row+4, row+6
		p0 = p1 = 0, r0 = r1 = 0;
		break;
	}
	if (has_scale) a = _mm512_mul_ps(a, sc), b = _mm512_mul_ps(b, sc);
	if (has_shift) a = _mm512_add_ps(a, sh), b = _mm512_add_ps(b, sh);
	if (W == 8) {
		if (res) {
			__m512 ra = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(res + row * 8)),
				_mm256_loadu_ps(res + (row + 2) * 8), 1);
			__m512 rb = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(res + (row + 4) * 8)),
				_mm256_loadu_ps(res + (row + 6) * 8), 1);
			a = _mm512_add_ps(a, ra), b = _mm512_add_ps(b, rb);
		}
		if (relu) a = _mm512_max_ps(a, zero), b = _mm512_max_ps(b, zero);
		_mm256_storeu_ps(y + row * 8, _mm512_castps512_ps256(a));
		_mm256_storeu_ps(y + (row + 2) * 8, _mm512_extractf32x8_ps(a, 1));
		_mm256_storeu_ps(y + (row + 4) * 8, _mm512_castps512_ps256(b));
		_mm256_storeu_ps(y + (row + 6) * 8, _mm512_extractf32x8_ps(b, 1));
		return;
	}
	if (res) a = _mm512_add_ps(a, _mm512_loadu_ps(r0)), b = _mm512_add_ps(b, _mm512_loadu_ps(r1));
	// max(v, 0) returns its second operand, 0, for NaN: as reluMask32
	if (relu) a = _mm512_max_ps(a, zero), b = _mm512_max_ps(b, zero);
	_mm512_storeu_ps(p0, a);
	_mm512_storeu_ps(p1, b);
}

// The first tile row of tile vector j, for tw tiles per row.
static inline int wino_ty(int j, int tw) { return tw >= 16 ? j : j * (16 / tw); }

// wino_input transforms the tiles of vector j of channel plane x (H x W)
// into the 16 vectors v[r*4 + s].
KERNEL INLINE void wino_input(const float *x, int H, int W, int j, __m512 v[16]) {
	const int tw = W / 2;
	const int ty = wino_ty(j, tw);
	const __m512i ie = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
	const __m512i io = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
	// s=0 reads the odd element left of the tile (lane-1 of odd, 0 where a
	// tile row starts); s=3 the even element right of it (lane+1 of even,
	// 0 where a tile row ends): index 16 selects the zero vector
	__m512i il, ir;
	switch (tw) {
	case 16:
		il = _mm512_set_epi32(14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 16);
		ir = _mm512_set_epi32(16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1);
		break;
	case 8:
		il = _mm512_set_epi32(14, 13, 12, 11, 10, 9, 8, 16, 6, 5, 4, 3, 2, 1, 0, 16);
		ir = _mm512_set_epi32(16, 15, 14, 13, 12, 11, 10, 9, 16, 7, 6, 5, 4, 3, 2, 1);
		break;
	default: // 4
		il = _mm512_set_epi32(14, 13, 12, 16, 10, 9, 8, 16, 6, 5, 4, 16, 2, 1, 0, 16);
		ir = _mm512_set_epi32(16, 15, 14, 13, 16, 11, 10, 9, 16, 7, 6, 5, 16, 3, 2, 1);
		break;
	}
	const __m512 zero = _mm512_setzero_ps();
	__m512 d[4][4];
#pragma GCC unroll 4
	for (int r = 0; r < 4; r++) {
		__m512 a, b;
		wino_rows(x, H, W, ty, r, &a, &b);
		__m512 e = _mm512_permutex2var_ps(a, ie, b);
		__m512 o = _mm512_permutex2var_ps(a, io, b);
		d[r][0] = _mm512_permutex2var_ps(o, il, zero);
		d[r][1] = e;
		d[r][2] = o;
		d[r][3] = _mm512_permutex2var_ps(e, ir, zero);
	}
	// B^T d B, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
	__m512 t[4][4];
#pragma GCC unroll 4
	for (int s = 0; s < 4; s++) {
		t[0][s] = _mm512_sub_ps(d[0][s], d[2][s]);
		t[1][s] = _mm512_add_ps(d[1][s], d[2][s]);
		t[2][s] = _mm512_sub_ps(d[2][s], d[1][s]);
		t[3][s] = _mm512_sub_ps(d[1][s], d[3][s]);
	}
#pragma GCC unroll 4
	for (int r = 0; r < 4; r++) {
		v[r * 4 + 0] = _mm512_sub_ps(t[r][0], t[r][2]);
		v[r * 4 + 1] = _mm512_add_ps(t[r][1], t[r][2]);
		v[r * 4 + 2] = _mm512_sub_ps(t[r][2], t[r][1]);
		v[r * 4 + 3] = _mm512_sub_ps(t[r][1], t[r][3]);
	}
}

#define WINO_FB 8

// wino_gemm_tile: for position e, filters fb*8.. and vectors v0..v0+V-1,
// M = sum over c of U[e][fb][c][f] * V[e][c][v].
KERNEL INLINE void wino_gemm_tile(const int V, int e, int fb, int v0, const float *vt, const float *u,
	int C, int nfb, int nvec, float *mt) {
	__m512 acc[WINO_FB][3];
#pragma GCC unroll 8
	for (int f = 0; f < WINO_FB; f++) {
#pragma GCC unroll 3
		for (int v = 0; v < V; v++) acc[f][v] = _mm512_setzero_ps();
	}
	const float *vp = vt + ((int64_t)e * C * nvec + v0) * 16;
	const float *up = u + ((int64_t)e * nfb + fb) * C * WINO_FB;
	for (int c = 0; c < C; c++) {
		__m512 xv[3];
#pragma GCC unroll 3
		for (int v = 0; v < V; v++) xv[v] = _mm512_loadu_ps(vp + ((int64_t)c * nvec + v) * 16);
		const float *uc = up + c * WINO_FB;
#pragma GCC unroll 8
		for (int f = 0; f < WINO_FB; f++) {
			__m512 w = _mm512_set1_ps(uc[f]);
#pragma GCC unroll 3
			for (int v = 0; v < V; v++) acc[f][v] = _mm512_fmadd_ps(w, xv[v], acc[f][v]);
		}
	}
	float *mp = mt + (((int64_t)e * nfb + fb) * WINO_FB * nvec + v0) * 16;
#pragma GCC unroll 8
	for (int f = 0; f < WINO_FB; f++) {
#pragma GCC unroll 3
		for (int v = 0; v < V; v++) _mm512_storeu_ps(mp + ((int64_t)f * nvec + v) * 16, acc[f][v]);
	}
}

KERNEL void eraserelu_wino_fwd_f32(const float *x, int64_t ximg, int C, int H, int W, int nimg,
	const float *u, int F, float *y, int64_t yimg, const float *scale, const float *shift,
	const float *res, int relu, float *vt, float *mt, double *stk, double *st1, double *st2,
	int64_t stimg) {
	int tw = W / 2, nvi = H * W / 4 / 16, nvec = nimg * nvi;
	int nfb = (F + WINO_FB - 1) / WINO_FB;
	// input transform: vt[e][c][vector]
	for (int im = 0; im < nimg; im++) {
		for (int c = 0; c < C; c++) {
			const float *xc = x + im * ximg + (int64_t)c * H * W;
			for (int j = 0; j < nvi; j++) {
				__m512 v[16];
				wino_input(xc, H, W, j, v);
				float *dst = vt + ((int64_t)c * nvec + im * nvi + j) * 16;
#pragma GCC unroll 16
				for (int e = 0; e < 16; e++) _mm512_storeu_ps(dst + (int64_t)e * C * nvec * 16, v[e]);
			}
		}
	}
	// GEMMs: mt[e][f][vector]
	for (int e = 0; e < 16; e++) {
		int v0 = 0;
		for (; v0 + 3 <= nvec; v0 += 3)
			for (int fb = 0; fb < nfb; fb++) wino_gemm_tile(3, e, fb, v0, vt, u, C, nfb, nvec, mt);
		for (; v0 + 2 <= nvec; v0 += 2)
			for (int fb = 0; fb < nfb; fb++) wino_gemm_tile(2, e, fb, v0, vt, u, C, nfb, nvec, mt);
		for (; v0 < nvec; v0++)
			for (int fb = 0; fb < nfb; fb++) wino_gemm_tile(1, e, fb, v0, vt, u, C, nfb, nvec, mt);
	}
	// output transform A^T M A, A^T = [1 1 1 0; 0 1 -1 -1], and the store
	const __m512i i0 = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
	const __m512i i1 = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
	int64_t estride = (int64_t)nfb * WINO_FB * nvec * 16;
	for (int im = 0; im < nimg; im++) {
		for (int f = 0; f < F; f++) {
			__m512 sc = _mm512_set1_ps(scale ? scale[f] : 1), sh = _mm512_set1_ps(shift ? shift[f] : 0);
			float *yf = y + im * yimg + (int64_t)f * H * W;
			const float *rf = res ? res + im * yimg + (int64_t)f * H * W : 0;
			for (int j = 0; j < nvi; j++) {
				const float *mp = mt + ((int64_t)f * nvec + im * nvi + j) * 16;
				__m512 m[16];
#pragma GCC unroll 16
				for (int e = 0; e < 16; e++) m[e] = _mm512_loadu_ps(mp + e * estride);
				__m512 t[2][4];
#pragma GCC unroll 4
				for (int s = 0; s < 4; s++) {
					t[0][s] = _mm512_add_ps(_mm512_add_ps(m[s], m[4 + s]), m[8 + s]);
					t[1][s] = _mm512_sub_ps(_mm512_sub_ps(m[4 + s], m[8 + s]), m[12 + s]);
				}
				int ty = wino_ty(j, tw);
#pragma GCC unroll 2
				for (int uu = 0; uu < 2; uu++) {
					__m512 y0 = _mm512_add_ps(_mm512_add_ps(t[uu][0], t[uu][1]), t[uu][2]);
					__m512 y1 = _mm512_sub_ps(_mm512_sub_ps(t[uu][1], t[uu][2]), t[uu][3]);
					// interleave: output columns 2*tile + 0 and + 1
					__m512 a = _mm512_permutex2var_ps(y0, i0, y1);
					__m512 b = _mm512_permutex2var_ps(y0, i1, y1);
					wino_store(yf, rf, W, ty, uu, a, b, sc, sh, scale != 0, shift != 0, relu);
				}
			}
			// the plane just written is in L1: its batch statistics now
			if (stk) {
				int64_t i = im * stimg + f;
				eraserelu_moments_f32(yf, 1, (int64_t)H * W, stk + i, st1 + i, st2 + i);
			}
		}
	}
}

// wino_out_rows loads the virtual 32 elements of output row u of the tiles
// of vector j (the elements wino_store writes) from plane y (H x W).
KERNEL INLINE void wino_out_rows(const float *y, int W, int ty, int u, __m512 *a, __m512 *b) {
	int row = 2 * ty + u;
	switch (W) {
	case 32:
		*a = _mm512_loadu_ps(y + row * 32);
		*b = _mm512_loadu_ps(y + row * 32 + 16);
		return;
	case 16:
		*a = _mm512_loadu_ps(y + row * 16);
		*b = _mm512_loadu_ps(y + (row + 2) * 16);
		return;
	default: // 8
		*a = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(y + row * 8)),
			_mm256_loadu_ps(y + (row + 2) * 8), 1);
		*b = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(y + (row + 4) * 8)),
			_mm256_loadu_ps(y + (row + 6) * 8), 1);
		return;
	}
}

// wino_grad_input transforms the 2x2 output gradients of the tiles of
// vector j of plane dy into the 16 vectors D = A dy A^T, A = [1 0; 1 1;
// 1 -1; 0 -1] (the adjoint of the output transform).
KERNEL INLINE void wino_grad_input(const float *dy, int W, int j, __m512 d[16]) {
	const int tw = W / 2;
	const int ty = wino_ty(j, tw);
	const __m512i ie = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
	const __m512i io = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
	__m512 yv[2][2];
#pragma GCC unroll 2
	for (int u = 0; u < 2; u++) {
		__m512 a, b;
		wino_out_rows(dy, W, ty, u, &a, &b);
		yv[u][0] = _mm512_permutex2var_ps(a, ie, b);
		yv[u][1] = _mm512_permutex2var_ps(a, io, b);
	}
	__m512 t[4][2];
#pragma GCC unroll 2
	for (int v = 0; v < 2; v++) {
		t[0][v] = yv[0][v];
		t[1][v] = _mm512_add_ps(yv[0][v], yv[1][v]);
		t[2][v] = _mm512_sub_ps(yv[0][v], yv[1][v]);
		t[3][v] = _mm512_sub_ps(_mm512_setzero_ps(), yv[1][v]);
	}
#pragma GCC unroll 4
	for (int r = 0; r < 4; r++) {
		d[r * 4 + 0] = t[r][0];
		d[r * 4 + 1] = _mm512_add_ps(t[r][0], t[r][1]);
		d[r * 4 + 2] = _mm512_sub_ps(t[r][0], t[r][1]);
		d[r * 4 + 3] = _mm512_sub_ps(_mm512_setzero_ps(), t[r][1]);
	}
}

// reduce16 returns the vector whose lane i is the sum of the lanes of a[i].
KERNEL INLINE __m512 reduce16(__m512 a[16]) {
	const __m512i l1 = _mm512_set_epi32(23, 22, 21, 20, 19, 18, 17, 16, 7, 6, 5, 4, 3, 2, 1, 0);
	const __m512i h1 = _mm512_set_epi32(31, 30, 29, 28, 27, 26, 25, 24, 15, 14, 13, 12, 11, 10, 9, 8);
	const __m512i l2 = _mm512_set_epi32(27, 26, 25, 24, 19, 18, 17, 16, 11, 10, 9, 8, 3, 2, 1, 0);
	const __m512i h2 = _mm512_set_epi32(31, 30, 29, 28, 23, 22, 21, 20, 15, 14, 13, 12, 7, 6, 5, 4);
	const __m512i l3 = _mm512_set_epi32(29, 28, 25, 24, 21, 20, 17, 16, 13, 12, 9, 8, 5, 4, 1, 0);
	const __m512i h3 = _mm512_set_epi32(31, 30, 27, 26, 23, 22, 19, 18, 15, 14, 11, 10, 7, 6, 3, 2);
	const __m512i l4 = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
	const __m512i h4 = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
	__m512 s1[8], s2[4], s3[2];
#pragma GCC unroll 8
	for (int i = 0; i < 8; i++)
		s1[i] = _mm512_add_ps(_mm512_permutex2var_ps(a[2 * i], l1, a[2 * i + 1]),
			_mm512_permutex2var_ps(a[2 * i], h1, a[2 * i + 1]));
#pragma GCC unroll 4
	for (int i = 0; i < 4; i++)
		s2[i] = _mm512_add_ps(_mm512_permutex2var_ps(s1[2 * i], l2, s1[2 * i + 1]),
			_mm512_permutex2var_ps(s1[2 * i], h2, s1[2 * i + 1]));
#pragma GCC unroll 2
	for (int i = 0; i < 2; i++)
		s3[i] = _mm512_add_ps(_mm512_permutex2var_ps(s2[2 * i], l3, s2[2 * i + 1]),
			_mm512_permutex2var_ps(s2[2 * i], h3, s2[2 * i + 1]));
	return _mm512_add_ps(_mm512_permutex2var_ps(s3[0], l4, s3[1]), _mm512_permutex2var_ps(s3[0], h4, s3[1]));
}

KERNEL void eraserelu_wino_wgrad_f32(const float *x, int64_t ximg, int C, int H, int W, const float *dy,
	int64_t dyimg, int F, int nimg, float *vt, float *dt, float *z) {
	int nvi = H * W / 4 / 16, nvec = nimg * nvi;
	for (int im = 0; im < nimg; im++) {
		for (int c = 0; c < C; c++) {
			const float *xc = x + im * ximg + (int64_t)c * H * W;
			for (int j = 0; j < nvi; j++) {
				__m512 v[16];
				wino_input(xc, H, W, j, v);
				float *dst = vt + ((int64_t)c * nvec + im * nvi + j) * 16;
#pragma GCC unroll 16
				for (int e = 0; e < 16; e++) _mm512_storeu_ps(dst + (int64_t)e * C * nvec * 16, v[e]);
			}
		}
		for (int f = 0; f < F; f++) {
			const float *df = dy + im * dyimg + (int64_t)f * H * W;
			for (int j = 0; j < nvi; j++) {
				__m512 d[16];
				wino_grad_input(df, W, j, d);
				float *dst = dt + ((int64_t)f * nvec + im * nvi + j) * 16;
#pragma GCC unroll 16
				for (int e = 0; e < 16; e++) _mm512_storeu_ps(dst + (int64_t)e * F * nvec * 16, d[e]);
			}
		}
	}
	// z[e][f][c] += sum over tiles of dt[e][f] * vt[e][c], 4x4 blocks of
	// (f, c) in registers (rows past F or C repeat the last one, dropped)
	for (int e = 0; e < 16; e++) {
		const float *ve = vt + (int64_t)e * C * nvec * 16;
		const float *de = dt + (int64_t)e * F * nvec * 16;
		float *ze = z + (int64_t)e * F * C;
		for (int f0 = 0; f0 < F; f0 += 4) {
			const float *dr[4];
#pragma GCC unroll 4
			for (int i = 0; i < 4; i++) dr[i] = de + (int64_t)(f0 + i < F ? f0 + i : F - 1) * nvec * 16;
			for (int c0 = 0; c0 < C; c0 += 4) {
				const float *vr[4];
#pragma GCC unroll 4
				for (int k = 0; k < 4; k++) vr[k] = ve + (int64_t)(c0 + k < C ? c0 + k : C - 1) * nvec * 16;
				__m512 acc[16];
#pragma GCC unroll 16
				for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_ps();
				for (int v = 0; v < nvec; v++) {
					__m512 dv[4], xv[4];
#pragma GCC unroll 4
					for (int i = 0; i < 4; i++) dv[i] = _mm512_loadu_ps(dr[i] + v * 16);
#pragma GCC unroll 4
					for (int k = 0; k < 4; k++) xv[k] = _mm512_loadu_ps(vr[k] + v * 16);
#pragma GCC unroll 4
					for (int i = 0; i < 4; i++) {
#pragma GCC unroll 4
						for (int k = 0; k < 4; k++) acc[i * 4 + k] = _mm512_fmadd_ps(dv[i], xv[k], acc[i * 4 + k]);
					}
				}
				float r[16];
				_mm512_storeu_ps(r, reduce16(acc));
				for (int i = 0; i < 4 && f0 + i < F; i++)
					for (int k = 0; k < 4 && c0 + k < C; k++) ze[(f0 + i) * C + c0 + k] += r[i * 4 + k];
			}
		}
	}
}
