//go:build !purego && amd64

package ops

/*
#cgo CFLAGS: -O2
#include "conv_direct.h"
*/
import "C"

import "unsafe"

// convDirectCPU reports whether this CPU runs the direct kernels.
var convDirectCPU = C.eraserelu_conv_direct_ok() != 0

func cf32(s []float32) *C.float {
	if len(s) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&s[0]))
}

// convDirectFwd32 runs the forward kernel on one image's channel group x
// (planes d.cstride apart) with the packed filters wp of the group, writing
// F rows of P pixels to y with the epilogue (its slices offset to the
// group's first filter, res to the image and group).
func convDirectFwd32(d *convDirect, x, wp []float32, F int, y []float32, scale, shift, res []float32, relu bool) {
	convDirectRawFwd32(x, int64(d.cstride), d.g.cg(), d.kk, d.tapoff, d.mask, wp, F, y, d.g.p(), scale, shift, res, relu)
}

// convDirectRawFwd32 runs the forward kernel with its arguments spelled
// out (conv_direct.h): nc channel planes of x cstride apart, kk taps with
// offsets tapoff and lane masks mask, the packed filters wp of F filters,
// F rows of P pixels written to y (res with y's layout).
func convDirectRawFwd32(x []float32, cstride int64, nc, kk int, tapoff []int64, mask []uint16, wp []float32, F int,
	y []float32, P int, scale, shift, res []float32, relu bool) {
	r := C.int(0)
	if relu {
		r = 1
	}
	C.eraserelu_conv_fwd_f32(cf32(x), C.int64_t(cstride), C.int(nc), C.int(kk),
		(*C.int64_t)(unsafe.Pointer(&tapoff[0])), (*C.uint16_t)(unsafe.Pointer(&mask[0])),
		cf32(wp), C.int(F), cf32(y), C.int64_t(P), C.int(P), cf32(scale), cf32(shift), cf32(res), C.int64_t(P), r)
}

// convMergePhases2 interleaves the four stride-2 phases of cg input planes
// h x w, computed on grids of rows ld apart (phase (a,b) of channel c at
// src[((a*2+b)*cg+c)*ceil(h/2)*ld]), into dx.
func convMergePhases2(dx, src []float32, cg, h, w, ld int) {
	C.eraserelu_merge_phases2_f32(cf32(dx), cf32(src), C.int(cg), C.int(h), C.int(w), C.int(ld))
}

// convDirectWGrad32 accumulates the filter gradient of nimg images' channel
// group x (images ximg apart) and output gradient dy (F rows of P pixels,
// images dyimg apart) into acc.
func convDirectWGrad32(d *convDirect, x []float32, ximg int, dy []float32, dyimg, F, nimg int, acc []float32) {
	P := d.g.p()
	C.eraserelu_conv_wgrad_f32(cf32(x), C.int64_t(ximg), C.int64_t(d.cstride), C.int(d.g.cg()), C.int(d.kk),
		(*C.int64_t)(unsafe.Pointer(&d.tapoff[0])), (*C.uint16_t)(unsafe.Pointer(&d.mask[0])),
		cf32(dy), C.int64_t(dyimg), C.int64_t(P), C.int(F), C.int(P), C.int(nimg), cf32(acc))
}

// convWinogradFwd32 runs the Winograd kernel on nimg images of one channel
// group (x and y, and res when not nil, offset to the first image and the
// group; images xImg and yImg apart) with the group's transformed filters u,
// F filters, and scratch vt, mt. With stats (offset to the first image and
// filter, images stImg apart) it writes each output plane's shifted
// moments as convCollectStats would.
func convWinogradFwd32(w *convWinograd, x []float32, xImg int, u []float32, F int, y []float32, yImg int,
	scale, shift, res []float32, relu bool, nimg int, vt, mt []float32, stk, st1, st2 []float64, stImg int) {
	g := &w.g
	r := C.int(0)
	if relu {
		r = 1
	}
	C.eraserelu_wino_fwd_f32(cf32(x), C.int64_t(xImg), C.int(g.cg()), C.int(g.H), C.int(g.W), C.int(nimg),
		cf32(u), C.int(F), cf32(y), C.int64_t(yImg), cf32(scale), cf32(shift), cf32(res), r, cf32(vt), cf32(mt),
		cf64(stk), cf64(st1), cf64(st2), C.int64_t(stImg))
}

// convWinogradWGrad32 accumulates the transformed filter gradient z of nimg
// images of one channel group (x and dy offset to the first image and the
// group, images xImg and dyImg apart) with scratch vt, dt.
func convWinogradWGrad32(w *convWinograd, x []float32, xImg int, dy []float32, dyImg, F, nimg int, vt, dt, z []float32) {
	g := &w.g
	C.eraserelu_wino_wgrad_f32(cf32(x), C.int64_t(xImg), C.int(g.cg()), C.int(g.H), C.int(g.W), cf32(dy),
		C.int64_t(dyImg), C.int(F), C.int(nimg), cf32(vt), cf32(dt), cf32(z))
}
