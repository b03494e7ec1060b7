package layers

import (
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
)

// MaxPool is the maximum over kernel x kernel windows of x (N, C, H, W)
// taken every stride pixels, with pad rows and columns of -inf on each
// border (PyTorch's nn.MaxPool2d(kernel, stride, pad)).
func MaxPool(x *gorgonia.Node, kernel, stride, pad int) (*gorgonia.Node, error) {
	return ops.MaxPool2D(x, kernel, stride, pad)
}

// AvgPool is the mean over kernel x kernel windows of x (N, C, H, W) taken
// every stride pixels, zero padding counted (nn.AvgPool2d's default).
func AvgPool(x *gorgonia.Node, kernel, stride, pad int) (*gorgonia.Node, error) {
	return ops.AvgPool2D(x, kernel, stride, pad)
}

// GlobalAvgPool averages each channel of x (N, C, H, W) to (N, C), the
// classifier's input in every CNN of the paper.
func GlobalAvgPool(x *gorgonia.Node) (*gorgonia.Node, error) { return ops.GlobalAvgPool(x) }
