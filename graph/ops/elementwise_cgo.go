//go:build !purego && amd64

package ops

/*
#cgo LDFLAGS: -lm
#include "elementwise_avx512.h"
*/
import "C"

import "unsafe"

func cf64(s []float64) *C.double {
	if len(s) == 0 {
		return nil
	}
	return (*C.double)(unsafe.Pointer(&s[0]))
}

func simdReLU32(y, x []float32) {
	if len(x) > 0 {
		C.eraserelu_relu_f32(cf32(y[:len(x)]), cf32(x), C.int64_t(len(x)))
	}
}

func simdReLUGrad32(dx, y, dy []float32) {
	if len(y) > 0 {
		C.eraserelu_relu_grad_f32(cf32(dx[:len(y)]), cf32(y), cf32(dy[:len(y)]), C.int64_t(len(y)))
	}
}

func simdAdd32(y, a, b []float32, relu bool) {
	if len(y) > 0 {
		C.eraserelu_add_f32(cf32(y), cf32(a[:len(y)]), cf32(b[:len(y)]), C.int64_t(len(y)), cbool(relu))
	}
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func simdBNFwd32(a *bnFwdArgs[float32], lo, hi int) {
	C.eraserelu_bn_fwd_f32(cf32(a.x), cf32(a.y), cf32(a.gamma), cf32(a.beta), cf64(a.mean), cf64(a.invstd), cf64(a.bvar),
		C.int64_t(a.n), C.int64_t(a.c), C.int64_t(a.inner), cf32(a.res), C.double(a.eps), cbool(a.stats), cbool(a.relu), C.int64_t(lo), C.int64_t(hi))
}

func simdMoments32(y []float32, np, m int, k, s1, s2 []float64) {
	if np > 0 {
		C.eraserelu_moments_f32(cf32(y[:np*m]), C.int64_t(np), C.int64_t(m), cf64(k[:np]), cf64(s1[:np]), cf64(s2[:np]))
	}
}

func simdBNRed32(a *bnRedArgs[float32], lo, hi int) {
	C.eraserelu_bn_red_f32(cf32(a.x), cf32(a.dy), cf32(a.reluOut), cf32(a.red), cf64(a.mean), cf64(a.invstd),
		C.int64_t(a.n), C.int64_t(a.c), C.int64_t(a.inner), C.int64_t(lo), C.int64_t(hi))
}

func simdBNDx32(a *bnDxArgs[float32], lo, hi int) {
	C.eraserelu_bn_dx_f32(cf32(a.x), cf32(a.gamma), cf32(a.dy), cf32(a.red), cf32(a.dx), cf64(a.mean), cf64(a.invstd),
		C.int64_t(a.n), C.int64_t(a.c), C.int64_t(a.inner), cbool(a.batch), C.int64_t(lo), C.int64_t(hi))
}
