//go:build purego || !amd64

package ops

// convDirectCPU: the pure-Go build and other architectures have no direct
// kernels.
const convDirectCPU = false

func convDirectFwd32(d *convDirect, x, wp []float32, F int, y []float32, scale, shift, res []float32, relu bool) {
	panic("ops: direct convolution kernels need cgo")
}

func convDirectRawFwd32(x []float32, cstride int64, nc, kk int, tapoff []int64, mask []uint16, wp []float32, F int,
	y []float32, P int, scale, shift, res []float32, relu bool) {
	panic("ops: direct convolution kernels need cgo")
}

func convMergePhases2(dx, src []float32, cg, h, w, ld int) {
	panic("ops: direct convolution kernels need cgo")
}

func convDirectWGrad32(d *convDirect, x []float32, ximg int, dy []float32, dyimg, F, nimg int, acc []float32) {
	panic("ops: direct convolution kernels need cgo")
}

func convWinogradFwd32(w *convWinograd, x []float32, xImg int, u []float32, F int, y []float32, yImg int,
	scale, shift, res []float32, relu bool, nimg int, vt, mt []float32, stk, st1, st2 []float64, stImg int) {
	panic("ops: Winograd kernels need cgo")
}

func convWinogradWGrad32(w *convWinograd, x []float32, xImg int, dy []float32, dyImg, F, nimg int, vt, dt, z []float32) {
	panic("ops: Winograd kernels need cgo")
}
