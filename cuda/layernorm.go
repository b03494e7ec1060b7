package cuda

import (
	"math"
	"reflect"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
)

// Layer norm keeps the CPU op's float64 statistics: the forward saves each
// row's mean and inverse standard deviation as doubles (a buffer of 2N
// float64, i.e. 4N float32 words: means, then invstds), and the backward
// kernels compute in double from them, as graph/ops/layernorm.go does.
// eps is passed as the two words of its float64 (kernel floats are float32).

// LayerNormOp(x, gamma, beta) -> y, x of shape (N, D).
func lowerLN(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	op := n.Op().(*ops.LayerNormOp)
	s := shapeOf(n)
	rows, d := s[0], s[1]
	saved := l.s.buf(nodeName(n)+"/saved", 4*rows, Activation)
	l.saved[reflect.ValueOf(op).Pointer()] = saved
	lo, hi := words(math.Float64bits(op.Eps()))
	y := l.out(n)
	l.emit("ln_fwd", []int{rows, d, lo, hi}, nil, []int{in[0], in[1], in[2], saved, y}, []int{saved, y}, n)
	return y, nil
}

// lnInputGradOp(x, gamma, y, dy) -> dx
func lowerLNInputGrad(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	saved, err := l.savedOf(n.Op())
	if err != nil {
		return 0, err
	}
	s := shapeOf(n)
	dx := l.out(n)
	l.emit("ln_input_grad", []int{s[0], s[1]}, nil, []int{in[0], in[1], in[3], saved, dx}, []int{dx}, n)
	return dx, nil
}

// lnParamGradOp(x, y, dy) -> (2, D): gradients of gamma and beta.
func lowerLNParamGrad(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	saved, err := l.savedOf(n.Op())
	if err != nil {
		return 0, err
	}
	s := shapeOf(graph.Children(n)[0])
	red := l.out(n)
	l.emit("ln_param_grad", []int{s[0], s[1]}, nil, []int{in[0], in[2], saved, red}, []int{red}, n)
	return red, nil
}
