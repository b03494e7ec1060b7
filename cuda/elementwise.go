package cuda

import (
	"fmt"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
)

// The element-wise family: ReLU, the residual add (fused with the ReLU
// after it) and PReLU.

var (
	// x -> y
	reluFwd = defKernel("relu_fwd", 2, elemLaunch, func(_ *Ref, _ Instr, a ElemArgs, b [][]float32) {
		for i := 0; i < a.N; i++ {
			b[1][i] = max(b[0][i], 0)
		}
	})
	// x, dy -> dx
	reluBwd = defKernel("relu_bwd", 3, elemLaunch, func(_ *Ref, _ Instr, a ElemArgs, b [][]float32) {
		for i := 0; i < a.N; i++ {
			if b[0][i] > 0 {
				b[2][i] = b[1][i]
			} else {
				b[2][i] = 0
			}
		}
	})
	// a, b -> a+b
	addKernel = defKernel("add", 3, elemLaunch, func(_ *Ref, _ Instr, a ElemArgs, b [][]float32) {
		for i := 0; i < a.N; i++ {
			b[2][i] = b[0][i] + b[1][i]
		}
	})
	// a, b -> max(a+b, 0)
	addReLU = defKernel("add_relu", 3, elemLaunch, func(_ *Ref, _ Instr, a ElemArgs, b [][]float32) {
		for i := 0; i < a.N; i++ {
			b[2][i] = max(b[0][i]+b[1][i], 0)
		}
	})
	// x, alpha -> y
	preluFwd = defKernel("prelu_fwd", 3, nciLaunch, func(_ *Ref, _ Instr, a NCIArgs, b [][]float32) {
		refPReLU(a, b[0], b[1], b[0], b[2])
	})
	// x, alpha, dy -> dx
	preluDx = defKernel("prelu_dx", 4, nciLaunch, func(_ *Ref, _ Instr, a NCIArgs, b [][]float32) {
		refPReLU(a, b[0], b[1], b[2], b[3])
	})
	// x, dy -> dalpha: one block per channel
	preluDAlpha = defKernel("prelu_dalpha", 3, func(a NCIArgs) Dim { return perBlock(a.C) }, func(_ *Ref, _ Instr, a NCIArgs, b [][]float32) {
		forChannels(a, func(ch int, at func(func(o int))) {
			var s float64
			at(func(o int) {
				if x := b[0][o]; x <= 0 {
					s += float64(x * b[1][o])
				}
			})
			b[2][ch] = float32(s)
		})
	})

	// The bf16 variants (a bf16 step's stored block outputs, storesBF16):
	// suffixes name the types of a, b and y (f fp32, h bf16); an add's
	// bf16 operand is always b (the lowering swaps them: float addition
	// commutes).
	addFFH         = bf16Variant(addKernel, "add_ffh", 2)
	addFHF         = bf16Variant(addKernel, "add_fhf", 1)
	addFHH         = bf16Variant(addKernel, "add_fhh", 1, 2)
	addReLUFFH     = bf16Variant(addReLU, "add_relu_ffh", 2)
	addReLUFHF     = bf16Variant(addReLU, "add_relu_fhf", 1)
	addReLUFHH     = bf16Variant(addReLU, "add_relu_fhh", 1, 2)
	reluBwdBF16    = bf16Variant(reluBwd, "relu_bwd_bf16", 0)
	addByTypes     = map[[2]bool]kernel[ElemArgs, *ElemArgs]{{false, false}: addKernel, {false, true}: addFFH, {true, false}: addFHF, {true, true}: addFHH}
	addReLUByTypes = map[[2]bool]kernel[ElemArgs, *ElemArgs]{{false, false}: addReLU, {false, true}: addReLUFFH, {true, false}: addReLUFHF, {true, true}: addReLUFHH}
)

func elemLaunch(a ElemArgs) Dim { return gridStride(a.N) }
func nciLaunch(a NCIArgs) Dim   { return gridStride(a.size()) }

// refPReLU is out = src where x > 0, alpha*src elsewhere (the forward with
// src = x, the input gradient with src = dy).
func refPReLU(a NCIArgs, x, alpha, src, out []float32) {
	for i := 0; i < a.size(); i++ {
		if x[i] > 0 {
			out[i] = src[i]
		} else {
			out[i] = alpha[(i/a.Inner)%a.C] * src[i]
		}
	}
}

func lowerReLU(l *lowerer, n *gorgonia.Node, _ ops.Desc, in []int) (int, error) {
	y := l.out(n)
	l.emit(reluFwd.instr(ElemArgs{N: elems(n)}, []int{in[0], y}, []int{y}), n)
	return y, nil
}

// (x, dy) -> dx
func lowerReLUGrad(l *lowerer, n *gorgonia.Node, _ ops.Desc, in []int) (int, error) {
	dx := l.out(n)
	k := reluBwd
	if l.s.Bufs[in[0]].BF16 {
		k = reluBwdBF16
	}
	l.emit(k.instr(ElemArgs{N: elems(n)}, []int{in[0], in[1], dx}, []int{dx}), n)
	return dx, nil
}

// lowerAdd uses add_relu when a ReLU alone reads the sum (the residual
// merge). In a bf16 step the sum (the block output) is stored in bf16 when
// its readers all take bf16, and an operand may be bf16 (a block output
// read by the next block's identity shortcut).
func lowerAdd(l *lowerer, n *gorgonia.Node, _ ops.Desc, in []int) (int, error) {
	a, b := in[0], in[1]
	if l.s.Bufs[a].BF16 {
		a, b = b, a
	}
	if l.s.Bufs[a].BF16 {
		return 0, fmt.Errorf("both operands of %s are bf16", nodeName(n))
	}
	y := l.out(n)
	kernels, result := addByTypes, n
	if relu := l.fusableReLU(n); relu != nil {
		kernels, result = addReLUByTypes, relu
		l.fused[relu] = y
		l.s.Bufs[y].Name += "+" + nodeName(relu)
	}
	l.s.Bufs[y].BF16 = l.storesBF16(result)
	k := kernels[[2]bool{l.s.Bufs[b].BF16, l.s.Bufs[y].BF16}]
	l.emit(k.instr(ElemArgs{N: elems(n)}, []int{a, b, y}, []int{y}), n)
	return y, nil
}

// fusableReLU returns the ReLU that is the only reader of n's output (a
// batch norm's backward ops take its output only to be ordered after it),
// and that is not itself a root (a pinned output or gradient).
func (l *lowerer) fusableReLU(n *gorgonia.Node) *gorgonia.Node {
	var relu *gorgonia.Node
	for _, c := range l.consumers[n] {
		switch ops.Describe(c.Op()).Kind {
		case ops.KindReLU:
			if relu != nil {
				return nil
			}
			relu = c
		case ops.KindBatchNormParamGrad:
		default:
			return nil
		}
	}
	if relu == nil {
		return nil
	}
	for _, c := range l.consumers[relu] {
		if ops.Describe(c.Op()).Kind == ops.KindPin {
			return nil
		}
	}
	return relu
}

func lowerPReLU(l *lowerer, n *gorgonia.Node, _ ops.Desc, in []int) (int, error) {
	y := l.out(n)
	l.emit(preluFwd.instr(nci(shapeOf(n)), []int{in[0], in[1], y}, []int{y}), n)
	return y, nil
}

// (x, alpha, dy) -> dx
func lowerPReLUDx(l *lowerer, n *gorgonia.Node, _ ops.Desc, in []int) (int, error) {
	dx := l.out(n)
	l.emit(preluDx.instr(nci(shapeOf(n)), []int{in[0], in[1], in[2], dx}, []int{dx}), n)
	return dx, nil
}

// (x, dy) -> dalpha
func lowerPReLUDAlpha(l *lowerer, n *gorgonia.Node, _ ops.Desc, in []int) (int, error) {
	da := l.out(n)
	l.emit(preluDAlpha.instr(nci(shapeOf(graph.Children(n)[0])), []int{in[0], in[1], da}, []int{da}), n)
	return da, nil
}
