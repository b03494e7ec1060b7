// Direct (implicit-GEMM) float32 convolution kernels for AVX-512, called
// through cgo by conv_direct_cgo.go; see conv_direct.go for the layout of
// their arguments.
#ifndef ERASERELU_CONV_DIRECT_H
#define ERASERELU_CONV_DIRECT_H

#include <stdint.h>

// 1 when the CPU and the OS support the AVX-512 subset the kernels use.
int eraserelu_conv_direct_ok(void);

// Forward kernel over one image and channel group: for f < F, p < P
//   y[f*ldy + p] = epilogue_f(sum_{c<C, t<KK} w[f][c][t] * x[c*cstride + tapoff[t] + p])
// where the load of tap t for the 16 pixels of vector j is masked by
// mask[j*KK + t] (lanes outside the input read as zero), wp holds the
// filters packed as [ceil(F/8)][C][KK][8] (zero rows past F), and the
// epilogue is v*scale[f] + shift[f] (scale and shift may be NULL: 1 and 0),
// plus res[f*ldres + p] when res is not NULL, then max(v, 0) when relu.
void eraserelu_conv_fwd_f32(const float *x, int64_t cstride, int C, int KK,
	const int64_t *tapoff, const uint16_t *mask, const float *wp, int F,
	float *y, int64_t ldy, int P, const float *scale, const float *shift,
	const float *res, int64_t ldres, int relu);

// Filter-gradient kernel over nimg images (x and dy ximg and dyimg apart)
// of one channel group: for f < F, c < C, t < KK, acc[(f*C + c)*KK + t]
// (the filter gradient's layout) accumulates dy[f*lddy + p] *
// x[c*cstride + tapoff[t] + p] over the pixels p < P of every image, x
// masked as in the forward kernel; the products are summed in 16 lanes
// over all the images, then across the lanes into acc.
void eraserelu_conv_wgrad_f32(const float *x, int64_t ximg, int64_t cstride, int C, int KK,
	const int64_t *tapoff, const uint16_t *mask, const float *dy, int64_t dyimg, int64_t lddy,
	int F, int P, int nimg, float *acc);

// Winograd F(2x2, 3x3) forward over nimg images (x and y ximg and yimg
// apart) of one channel group: 3x3, stride 1, padding 1, H even, W 8, 16 or
// 32, H*W/4 a multiple of 16. u holds the transformed filters
// [16][ceil(F/8)][C][8] (conv_winograd.go); vt and mt are scratch of
// 16*C*nvec*16 and 16*ceil(F/8)*8*nvec*16 floats, nvec = nimg*H*W/64. The
// epilogue is the forward kernel's (res with y's layout). With stk not
// NULL, each output plane's shifted moments (eraserelu_moments_f32) are
// written to stk, st1, st2 at [im*stimg + f] as soon as it is stored.
void eraserelu_wino_fwd_f32(const float *x, int64_t ximg, int C, int H, int W, int nimg,
	const float *u, int F, float *y, int64_t yimg, const float *scale, const float *shift,
	const float *res, int relu, float *vt, float *mt, double *stk, double *st1, double *st2,
	int64_t stimg);

// Winograd F(2x2, 3x3) filter gradient over nimg images (x and dy ximg
// and dyimg apart) of one channel group (same geometries as
// eraserelu_wino_fwd_f32): z[e][f][c] (16 x F x C, e = 4r + s) accumulates
// the sum over tiles of (A dy A^T)[e] * (B^T x B)[e]; the filter gradient
// is G^T z G (conv_winograd.go). vt and dt are scratch of 16*C*nvec*16 and
// 16*F*nvec*16 floats, nvec = nimg*H*W/64.
void eraserelu_wino_wgrad_f32(const float *x, int64_t ximg, int C, int H, int W, const float *dy,
	int64_t dyimg, int F, int nimg, float *vt, float *dt, float *z);

// Interleaves the four stride-2 phases of C input planes H x W (phase
// (a, b) of channel c at src[((a*2+b)*C + c)*P], P = ceil(H/2)*ld, rows ld
// apart) into dx: dx[(c*H + 2i+a)*W + 2j+b] = phase (a,b)[c][i*ld + j].
void eraserelu_merge_phases2_f32(float *dx, const float *src, int C, int H, int W, int ld);

#endif
