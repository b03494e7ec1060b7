package cuda

import (
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
)

// bf16 mixed precision (Precision BF16). Every GEMM reads bfloat16
// operands and accumulates and writes float32: the convolutions' im2col
// columns are written as bf16 (im2col_bf16), the other GEMM inputs (the
// gradient dy, the input of a 1x1 convolution or a linear layer) are
// rounded once into a bf16 copy (to_bf16, cached per source buffer), and
// the parameters, which stay the float32 master copy the SGD updates, are
// rounded once per step into one packed bf16 copy (one to_bf16 over the
// whole parameter region, before the first GEMM). Everything else (GEMM
// outputs, batch norm and its statistics, ReLU, residual sums, pooling,
// softmax and the loss, the gradients the SGD reads) stays float32.
//
// Rounding is to nearest, ties to even, by integer operations on the
// float32 bits (no bf16 intrinsics: the kernels compile for compute_70),
// so the reference interpreter rounds bit for bit as the device. A product
// of two bf16 values is exact in float32 (8 + 8 significant bits), so the
// device's tensor-core GEMM and the interpreter's float32 GEMM differ only
// in the order of their float32 sums, as in the fp32 step.

// RoundBF16 is the bfloat16 nearest to f (ties to even) as its 16 bits;
// NaN stays NaN (quiet), values beyond the largest bf16 round to infinity.
func RoundBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

// BF16Float is the float32 value of bfloat16 bits h (exact).
func BF16Float(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// BF16Bytes is the size of a bf16 element.
const BF16Bytes = 2

// halves views float32 words of the arena as the bf16 elements they hold
// (two per word, the first in the low half, as on the little-endian device).
func halves(w []float32) []uint16 {
	if len(w) == 0 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&w[0])), 2*len(w))
}

// BF16Values is the float32 values of the first n bf16 elements held in
// words w (a bf16 buffer as Read returns it).
func BF16Values(w []float32, n int) []float32 { return bf16Floats(w, n) }

// bf16Floats is the float32 values of the first n bf16 elements in words w.
func bf16Floats(w []float32, n int) []float32 {
	out := make([]float32, n)
	for i, h := range halves(w)[:n] {
		out[i] = BF16Float(h)
	}
	return out
}

var (
	// x -> bf16(x); the source may span several buffers (the packed
	// parameters), as the sgd kernel's runs do.
	toBF16 = defKernel("to_bf16", 2, elemLaunch, func(r *Ref, in Instr, a ElemArgs, b [][]float32) {
		x, y := r.whole(in.Bufs[0])[:a.N], halves(b[1])
		for i, v := range x {
			y[i] = RoundBF16(v)
		}
	})
	// x -> bf16 columns
	im2colBF16 = defKernel("im2col_bf16", 2, func(a Im2colArgs) Dim { return gridStride(a.N * a.C * a.OH * a.OW) }, func(_ *Ref, _ Instr, a Im2colArgs, b [][]float32) {
		col := make([]float32, a.N*a.C*a.KH*a.KW*a.OH*a.OW)
		refIm2col(a, [][]float32{b[0], col}, false)
		h := halves(b[1])
		for i, v := range col {
			h[i] = RoundBF16(v)
		}
	})
	// bf16 x -> bf16 columns (a stored bf16 activation)
	im2colBF16BF16 = bf16Variant(im2colBF16, "im2col_bf16_bf16", 0)
	// the shortcut and pooling kernels reading a stored bf16 activation
	zeroPadFwdBF16 = bf16Variant(zeroPadFwd, "zeropad_fwd_bf16", 0)
	gapFwdBF16     = bf16Variant(gapFwd, "gap_fwd_bf16", 0)
)

// bf16Variant enters kernel name in the catalog: base computing on other
// buffer types, the buffers at positions half being bf16. Inputs are
// widened exactly to float32 (ldx in ops.cu), an output is computed in
// float32 and rounded once as it is stored (store): the device kernel is
// base's template body instantiated for those types.
func bf16Variant[A any, P kernelArgs[A]](base kernel[A, P], name string, half ...int) kernel[A, P] {
	k, ok := Kernels[base.name]
	if !ok {
		panic("cuda: bf16 variant " + name + " of undefined kernel " + base.name)
	}
	if _, dup := Kernels[name]; dup {
		panic("cuda: kernel " + name + " defined twice")
	}
	ref := k.ref
	k.Name = name
	k.ref = func(r *Ref, in Instr, b [][]float32) error {
		wide := append([][]float32(nil), b...)
		for _, i := range half {
			wide[i] = bf16Floats(b[i], r.S.Bufs[in.Bufs[i]].Elems)
		}
		if err := ref(r, in, wide); err != nil {
			return err
		}
		for _, i := range half {
			if slices.Contains(in.Writes, in.Bufs[i]) {
				h := halves(b[i])
				for j, v := range wide[i] {
					h[j] = RoundBF16(v)
				}
			}
		}
		return nil
	}
	Kernels[name] = k
	bf16Kernels[name] = true
	return kernel[A, P]{name}
}

// bf16Kernels names the kernels bf16Variant entered (the tests check that
// the device checks run every one).
var bf16Kernels = map[string]bool{}

// storesBF16 reports whether node n's output (a convolution's, a batch
// norm's, a residual add's) is stored in bf16: in a bf16 step, when it is no root
// (an output the host reads, a gradient) and every reader takes it in bf16
// (takesBF16). PyTorch's autocast stores the same tensors in bf16 (cuDNN
// writes a convolution's output in its input's type, and the sum of two
// bf16 tensors is bf16); what reads them computes in fp32 from the rounded
// values in both.
func (l *lowerer) storesBF16(n *gorgonia.Node) bool {
	if !l.mixed() || l.roots[n] || len(l.consumers[n]) == 0 {
		return false
	}
	for _, c := range l.consumers[n] {
		for i, k := range graph.Children(c) {
			if k == n && !l.takesBF16(c, i) {
				return false
			}
		}
	}
	return true
}

// takesBF16 reports whether node c has a kernel reading its i-th input in
// bf16: batch norm's x (forward, both gradients; bn_*_bf16, bn_apply_h*),
// the input of a convolution or linear layer (forward and weight gradient:
// bf16 columns or a bf16 GEMM operand either way), the ReLU backward's y,
// the zero-pad shortcut's and global average pooling's input, and one
// operand of an add whose other operand is not bf16 (its kernels take one
// bf16 operand).
func (l *lowerer) takesBF16(c *gorgonia.Node, i int) bool {
	switch ops.Describe(c.Op()).Kind {
	case ops.KindBatchNorm, ops.KindBatchNormInputGrad, ops.KindConv2D, ops.KindConv2DFilterGrad,
		ops.KindLinear, ops.KindLinearWeightGrad, ops.KindReLUGrad, ops.KindZeroPadShortcut, ops.KindGlobalAvgPool:
		return i == 0
	case ops.KindBatchNormParamGrad:
		return i <= 1 // x; y (1) orders it after the forward only, no kernel reads it
	case ops.KindAdd:
		other := graph.Children(c)[1-i]
		id, lowered := l.nodes[other]
		return other != graph.Children(c)[i] && !(lowered && l.s.Bufs[id].BF16)
	}
	return false
}

// halfOut is a convolution's output buffer stored in bf16, and the fp32
// buffer its GEMMs write first: a transient that one to_bf16 launch
// (roundOut) rounds into the bf16 buffer. The rounding is a kernel of its
// own, not a bf16-output GEMM, so that every bf16 value of the step is
// written by a rounding of ops.cu that the interpreter matches bit for bit
// (gpu trace requires bf16 writes to be identical), and the bias of a
// convolution is added in fp32 before the one rounding. The transient lives
// only across the convolution's GEMMs, never at the arena's peak.
func (l *lowerer) halfOut(n *gorgonia.Node) (half, wide int) {
	half = l.out(n)
	l.s.Bufs[half].BF16 = true
	wide = l.scratch(nodeName(n)+"/fp32", elems(n))
	return half, wide
}

// roundOut rounds the fp32 transient wide into bf16 buffer half.
func (l *lowerer) roundOut(wide, half int, n *gorgonia.Node) {
	l.emit(toBF16.instr(ElemArgs{N: l.s.Bufs[half].Elems}, []int{wide, half}, []int{half}), n)
}

// mixed reports whether the step being lowered is bf16 mixed precision.
func (l *lowerer) mixed() bool { return l.s.Precision == BF16 }

// halfBuf is a new transient bf16 buffer of elems elements.
func (l *lowerer) halfBuf(name string, elems int) int {
	id := l.scratch(name, elems)
	l.s.Bufs[id].BF16 = true
	return id
}

// gemmOperand is what a GEMM reads for buffer id, and the offset (in
// elements) to add to the operand's: id itself in an fp32 step; in a bf16
// step the parameter's place in the packed bf16 weights, a buffer stored
// in bf16 itself, or a bf16 copy of the buffer (made once, at its first
// GEMM).
func (l *lowerer) gemmOperand(id int, n *gorgonia.Node) (int, int) {
	if !l.mixed() || l.s.Bufs[id].BF16 {
		return id, 0
	}
	if off, ok := l.paramOffset(id); ok {
		return l.bf16Weights(n), off
	}
	if h, ok := l.halfOf[id]; ok {
		return h, 0
	}
	b := l.s.Bufs[id]
	h := l.halfBuf(b.Name+"/bf16", b.Elems)
	l.emit(toBF16.instr(ElemArgs{N: b.Elems}, []int{id, h}, []int{h}), n)
	l.halfOf[id] = h
	return h, 0
}

// trainingParams are the parameter slots of the training step (the base of
// an inference step), whose buffers Plan packs gap-free in slot order.
func (l *lowerer) trainingParams() (*Step, []ParamSlot) {
	if l.inference() {
		return l.base, l.base.Params
	}
	return l.s, l.s.Params
}

// paramOffset is parameter buffer id's place, in elements, in the packed
// parameter region.
func (l *lowerer) paramOffset(id int) (int, bool) {
	st, slots := l.trainingParams()
	if l.inference() {
		bid, ok := l.s.Shared[id]
		if !ok {
			return 0, false
		}
		id = bid
	}
	off := 0
	for _, sl := range slots {
		if sl.Param == id {
			return off, true
		}
		off += st.Bufs[sl.Param].Elems
	}
	return 0, false
}

// bf16Weights is the packed bf16 copy of the parameters, rounded from the
// fp32 masters by one launch the first time a GEMM needs a weight.
func (l *lowerer) bf16Weights(n *gorgonia.Node) int {
	if l.weights >= 0 {
		return l.weights
	}
	st, slots := l.trainingParams()
	total := 0
	for _, sl := range slots {
		total += st.Bufs[sl.Param].Elems
	}
	first := slots[0].Param
	if l.inference() {
		first = l.shareBuf(first)
	}
	l.weights = l.halfBuf("params/bf16", total)
	l.emit(toBF16.instr(ElemArgs{N: total}, []int{first, l.weights}, []int{l.weights}), n)
	return l.weights
}

// checkOperands refuses a GEMM that mixes operand types or writes bf16.
func (s *Step) checkOperands(a, b, c int) error {
	if s.Bufs[a].BF16 != s.Bufs[b].BF16 {
		return fmt.Errorf("gemm operands %s and %s of different types", s.Bufs[a].Name, s.Bufs[b].Name)
	}
	if s.Bufs[c].BF16 {
		return fmt.Errorf("gemm output %s is bf16 (GEMMs accumulate and write fp32)", s.Bufs[c].Name)
	}
	return nil
}

// The accuracy a bf16 step is held to against a float64 step of the same
// graph (TestBF16StepMatchesFloat64 on the reference interpreter, and
// eraserelu gpu check --precision bf16 on the device; docs/CUDA.md "bf16
// mixed precision").
const (
	// BF16ForwardTol bounds the relative error of the forward quantities
	// (the loss, the running statistics). A bf16 operand carries a relative
	// rounding error of at most 2^-8 (RMS about 2^-9), a product of two at
	// most 2^-7; a running variance is a mean of squares of such sums
	// (2^-6 at worst); 2^-5 leaves a factor 2 over that worst case.
	BF16ForwardTol = 1.0 / 32
	// BF16UnitRatio is the ratio of bf16's unit roundoff to float32's,
	// 2^-8 / 2^-24: how much larger every rounding error of a bf16 GEMM
	// operand is than the float32 rounding it replaces.
	BF16UnitRatio = 1 << 16
	// BF16GradFactor: a gradient of the bf16 step may be at most
	// BF16GradFactor * BF16UnitRatio times as far from float64 as the
	// float32 step's worst gradient is (or BF16ForwardTol, if larger).
	// The float32 step's distance measures how much the network at this
	// batch amplifies rounding (tiny batches make batch norm's backward a
	// difference of nearly equal terms), and to first order the error
	// scales with the unit roundoff; the bf16 step rounds at fewer points
	// (only the GEMM inputs) but each GEMM input twice as often as it is
	// reused. Measured on ResNet-20, ResNet-20 erased, MLP-12 and ImageNet
	// ResNet-18: 0.8 to 3.9 times the unit ratio; 8 leaves a factor 2.
	BF16GradFactor = 8
)

// BF16GradLimit is the largest distance to float64 a bf16 step's gradient
// may have, given the float32 step's worst distance e32.
func BF16GradLimit(e32 float64) float64 {
	return max(BF16ForwardTol, BF16GradFactor*BF16UnitRatio*e32)
}
