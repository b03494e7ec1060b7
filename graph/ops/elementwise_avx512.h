// Element-wise and batch-norm float32 kernels for AVX-512, called through
// cgo by elementwise_cgo.go; each is the Go kernel of the same op written
// for 16 lanes (see the Go versions for what they compute), used only when
// eraserelu_conv_direct_ok says the CPU runs them.
#ifndef ERASERELU_ELEMENTWISE_AVX512_H
#define ERASERELU_ELEMENTWISE_AVX512_H

#include <stdint.h>

// y[i] = x[i] > 0 ? x[i] : +0 (NaN -> 0), i < n; y may be x.
void eraserelu_relu_f32(float *y, const float *x, int64_t n);
// dx[i] = y[i] > 0 ? dy[i] : +0, i < n; dx may be dy.
void eraserelu_relu_grad_f32(float *dx, const float *y, const float *dy, int64_t n);
// y[i] = a[i] + b[i], i < n, rectified as by eraserelu_relu_f32 when relu
// is set; y may be a or b.
void eraserelu_add_f32(float *y, const float *a, const float *b, int64_t n, int relu);

// Batch-norm forward over channels [lo, hi) of x (n, c, inner): with stats,
// mean[k], bvar[k] and invstd[k] from the batch (sums of x - x[k*inner]
// and its square in float64); then y = (x - mean)*gamma*invstd + beta,
// plus res[i] where res is not NULL (a residual, added as
// eraserelu_add_f32 would), rectified as by eraserelu_relu_f32 when relu is
// set.
void eraserelu_bn_fwd_f32(const float *x, float *y, const float *gamma, const float *beta,
	double *mean, double *invstd, double *bvar, int64_t n, int64_t c, int64_t inner,
	const float *res, double eps, int stats, int relu, int64_t lo, int64_t hi);
// Batch-norm parameter gradients over channels [lo, hi): red[k] =
// invstd[k] * sum dy*(x-mean[k]), red[c+k] = sum dy (float64 sums). With
// relu_out (not NULL), dy is first masked in place as by
// eraserelu_relu_grad_f32(dy, relu_out, dy): the gradient of a ReLU whose
// output is relu_out.
void eraserelu_bn_red_f32(const float *x, float *dy, const float *relu_out, float *red, const double *mean,
	const double *invstd, int64_t n, int64_t c, int64_t inner, int64_t lo, int64_t hi);
// Batch-norm input gradient over channels [lo, hi): dx = g*dy + b*(x-mean) + c0
// with the per-channel g, b, c0 of bnDxArgs.
void eraserelu_bn_dx_f32(const float *x, const float *gamma, const float *dy, const float *red,
	float *dx, const double *mean, const double *invstd, int64_t n, int64_t c, int64_t inner,
	int batch, int64_t lo, int64_t hi);
// Shifted moments of np planes of m values (plane j from y + j*m): k[j]
// = its first value, s1[j] and s2[j] the float64 sums of d and d², d =
// y - k[j] rounded to float32 (the sums of eraserelu_bn_fwd_f32's
// statistics, per plane).
void eraserelu_moments_f32(const float *y, int64_t np, int64_t m, double *k, double *s1, double *s2);

#endif
