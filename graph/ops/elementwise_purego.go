//go:build purego || !amd64

package ops

// The pure-Go build and other architectures have no AVX-512 kernels
// (simdOK is false there).

func simdReLU32(y, x []float32)                     { panic("ops: AVX-512 kernels need cgo") }
func simdReLUGrad32(dx, y, dy []float32)            { panic("ops: AVX-512 kernels need cgo") }
func simdAdd32(y, a, b []float32, relu bool)        { panic("ops: AVX-512 kernels need cgo") }
func simdBNFwd32(a *bnFwdArgs[float32], lo, hi int) { panic("ops: AVX-512 kernels need cgo") }
func simdBNRed32(a *bnRedArgs[float32], lo, hi int) { panic("ops: AVX-512 kernels need cgo") }
func simdMoments32(y []float32, np, m int, k, s1, s2 []float64) {
	panic("ops: AVX-512 kernels need cgo")
}
func simdBNDx32(a *bnDxArgs[float32], lo, hi int) { panic("ops: AVX-512 kernels need cgo") }
