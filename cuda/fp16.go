package cuda

import (
	"math"
)

// fp16 mixed precision (Precision FP16): the bf16 step's rounding points
// (bf16.go: im2col columns, one half copy of each other GEMM input, one
// packed half copy of the fp32 master weights per step) with IEEE half
// instead of bfloat16, for GPUs whose tensor cores have fp16 but not bf16
// (compute capability 7.x: V100, T4, RTX 20xx). Half has 11 significant
// bits (bf16 8) but 5 exponent bits (bf16 8): normal numbers from 2^-14 to
// 65504, subnormals down to 2^-24. Small gradients would underflow, so an
// fp16 step also scales the loss dynamically (lossscale.go).
//
// Rounding is to nearest, ties to even, with subnormals and overflow to
// infinity, by integer operations on the float32 bits (fp16_round in
// ops.cu, no half intrinsics), so the reference interpreter rounds bit
// for bit as the device. A product of two halves (11 + 11 significant
// bits) is exact in float32, so the device's tensor-core GEMM and the
// interpreter's float32 GEMM differ only in the order of their sums.

// RoundFP16 is the IEEE half nearest to f (ties to even) as its 16 bits:
// values below half's normal range become subnormals (or zero), values of
// magnitude 65520 or more (the midpoint above the largest half, 65504)
// become infinity, NaN stays NaN (quiet, the top payload bits kept).
func RoundFP16(f float32) uint16 {
	u := math.Float32bits(f)
	sign := uint16(u>>16) & 0x8000
	a := u & 0x7fffffff
	switch {
	case a > 0x7f800000: // NaN
		return sign | 0x7e00 | uint16(a>>13)&0x3ff
	case a >= 0x477ff000: // >= 65520: infinity
		return sign | 0x7c00
	case a >= 0x38800000: // >= 2^-14: normal; rebias the exponent (127 -> 15), round 13 bits off
		r := a - 0x38000000
		r += 0x0fff + (r>>13)&1
		return sign | uint16(r>>13)
	case a < 0x33000000: // < 2^-25 (half the smallest subnormal): zero
		return sign
	}
	// Subnormal: the value is m * 2^(e-150), a half subnormal k * 2^-24,
	// so k = m >> (126-e), rounded half to even (a carry into 0x400 is the
	// smallest normal, as it should be).
	e, m := a>>23, a&0x7fffff|0x800000
	s := 126 - e
	k, rem, half := m>>s, m&(1<<s-1), uint32(1)<<(s-1)
	if rem > half || rem == half && k&1 == 1 {
		k++
	}
	return sign | uint16(k)
}

// FP16Float is the float32 value of half bits h (exact).
func FP16Float(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	e, m := uint32(h>>10)&0x1f, uint32(h&0x3ff)
	switch {
	case e == 0x1f: // infinity, NaN
		return math.Float32frombits(sign | 0x7f800000 | m<<13)
	case e == 0:
		v := float32(m) * (1.0 / (1 << 24)) // exact: m < 2^10
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (e+112)<<23 | m<<13)
}

// FP16Values is the float32 values of the first n half elements held in
// words w (an fp16 buffer as Read returns it).
func FP16Values(w []float32, n int) []float32 { return halfFloats(w, n, FP16Float) }

// halfFloats is the float32 values of the first n 16-bit elements in words
// w, decoded by dec.
func halfFloats(w []float32, n int, dec func(uint16) float32) []float32 {
	out := make([]float32, n)
	for i, h := range halves(w)[:n] {
		out[i] = dec(h)
	}
	return out
}

var (
	// x -> half(x); the source may span several buffers (the packed
	// parameters), as the sgd kernel's runs do.
	toFP16 = defKernel("to_fp16", 2, elemLaunch, func(r *Ref, in Instr, a ElemArgs, b [][]float32) {
		roundInto(r.whole(in.Bufs[0])[:a.N], halves(b[1]), RoundFP16)
	})
	// x -> half columns
	im2colFP16 = defKernel("im2col_fp16", 2, func(a Im2colArgs) Dim { return gridStride(a.N * a.C * a.OH * a.OW) }, func(_ *Ref, _ Instr, a Im2colArgs, b [][]float32) {
		refIm2colHalf(a, b, RoundFP16)
	})
)

// roundInto stores round(x[i]) in h[i].
func roundInto(x []float32, h []uint16, round func(float32) uint16) {
	for i, v := range x {
		h[i] = round(v)
	}
}

// refIm2colHalf is im2col into 16-bit columns rounded by round.
func refIm2colHalf(a Im2colArgs, b [][]float32, round func(float32) uint16) {
	col := make([]float32, a.N*a.C*a.KH*a.KW*a.OH*a.OW)
	refIm2col(a, [][]float32{b[0], col}, false)
	roundInto(col, halves(b[1]), round)
}

// halfOperands reports whether the step being lowered gives its GEMMs
// 16-bit operands (bf16 or fp16).
func (l *lowerer) halfOperands() bool { return l.s.Precision.Half() }

// Half reports whether the precision's GEMMs read 16-bit operands.
func (p Precision) Half() bool { return p == BF16 || p == FP16 }

// halfKernels are the rounding kernels of the step's 16-bit format.
func (l *lowerer) halfKernels() (toHalf kernel[ElemArgs, *ElemArgs], im2colHalf kernel[Im2colArgs, *Im2colArgs]) {
	if l.s.Precision == FP16 {
		return toFP16, im2colFP16
	}
	return toBF16, im2colBF16
}

// Half reports whether the buffer holds 16-bit elements (bf16 or fp16).
func (b *Buf) Half() bool { return b.BF16 || b.FP16 }

// halfValues is the float32 values of a 16-bit buffer's elements held in
// words w.
func (b *Buf) halfValues(w []float32) []float32 {
	if b.FP16 {
		return FP16Values(w, b.Elems)
	}
	return BF16Values(w, b.Elems)
}

// HalfValues is the float32 values of a 16-bit buffer's elements held in
// words w (as Read returns them), for comparing two such buffers.
func (b *Buf) HalfValues(w []float32) []float32 { return b.halfValues(w) }

// The accuracy an fp16 step is held to against a float64 step of the same
// graph (TestFP16StepMatchesFloat64 on the reference interpreter, eraserelu
// gpu check --precision fp16 on the device; docs/CUDA.md "fp16 with
// dynamic loss scaling"). The forward bound is bf16's reasoning with
// half's unit roundoff 2^-11 in place of bf16's 2^-8; the gradient bound
// is bf16's limit scaled by the square root of the ratio of the two unit
// roundoffs, as measured (FP16GradFactor).
const (
	// FP16ForwardTol bounds the relative error of the forward quantities
	// (the loss, the running statistics): a half operand is off by at most
	// 2^-11 relative, a product of two by 2^-10, a variance (a mean of
	// squares of such sums) by 2^-9; 2^-8 leaves a factor 2.
	FP16ForwardTol = 1.0 / 256
	// FP16UnitRatio is the ratio of half's unit roundoff to float32's,
	// 2^-11 / 2^-24.
	FP16UnitRatio = 1 << 13
	// FP16GradFactor: a gradient of the fp16 step may be at most
	// FP16GradFactor * FP16UnitRatio times as far from float64 as the
	// float32 step's worst gradient is (or FP16ForwardTol, if larger).
	// Half rounds 8 times finer than bf16, but on the same weights and
	// batches the fp16 step's worst gradient distance measured only 2.6
	// to 3.5 times smaller than the bf16 step's (ResNet-20, ResNet-20
	// erased, MLP-12), near sqrt(8) = 2.8, not 8: at batch 4 the distance
	// is not first order in the unit roundoff but behaves as its square
	// root, as a sum of independent discrete events (pre-activations
	// within rounding of zero whose ReLU flips: their number grows with
	// the unit roundoff, their effects add in quadrature). So the limit is
	// bf16's, BF16GradFactor * BF16UnitRatio, divided by sqrt(8):
	// 8 * 2^16 / sqrt(8) = 8 * sqrt(8) * 2^13. Measured 2.2 to 9.1 times
	// FP16UnitRatio; 22.6 leaves a factor 2.5 over the worst.
	FP16GradFactor = BF16GradFactor * 2.8284271247461903 // 8 * sqrt(8)
)

// FP16GradLimit is the largest distance to float64 an fp16 step's
// gradient may have, given the float32 step's worst distance e32.
func FP16GradLimit(e32 float64) float64 {
	return max(FP16ForwardTol, FP16GradFactor*FP16UnitRatio*e32)
}
