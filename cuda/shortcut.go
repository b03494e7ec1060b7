package cuda

import (
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
)

// The zero-pad shortcut family (ResNet option A): subsample by Stride and
// pad the channels with zeros.

// ZeroPadArgs: x (N, C, H, W) <-> y (N, OutC, HO, WO), x's channels at
// channel Before of y.
type ZeroPadArgs struct{ N, C, OutC, Before, H, W, HO, WO, Stride int }

func (a *ZeroPadArgs) params() ([]*int, []*float64) {
	return []*int{&a.N, &a.C, &a.OutC, &a.Before, &a.H, &a.W, &a.HO, &a.WO, &a.Stride}, nil
}

var (
	// x -> y
	zeroPadFwd = defKernel("zeropad_fwd", 2, func(a ZeroPadArgs) Dim { return gridStride(a.N * a.OutC * a.HO * a.WO) }, func(_ *Ref, _ Instr, a ZeroPadArgs, b [][]float32) {
		for i := 0; i < a.N*a.OutC*a.HO*a.WO; i++ {
			ox, oy := i%a.WO, (i/a.WO)%a.HO
			oc, bi := (i/(a.WO*a.HO))%a.OutC, i/(a.WO*a.HO*a.OutC)
			ch := oc - a.Before
			b[1][i] = 0
			if ch >= 0 && ch < a.C {
				b[1][i] = b[0][((bi*a.C+ch)*a.H+oy*a.Stride)*a.W+ox*a.Stride]
			}
		}
	})
	// dy -> dx
	zeroPadBwd = defKernel("zeropad_bwd", 2, func(a ZeroPadArgs) Dim { return gridStride(a.N * a.C * a.H * a.W) }, func(_ *Ref, _ Instr, a ZeroPadArgs, b [][]float32) {
		s := a.Stride
		for i := 0; i < a.N*a.C*a.H*a.W; i++ {
			ix, iy := i%a.W, (i/a.W)%a.H
			ch, bi := (i/(a.W*a.H))%a.C, i/(a.W*a.H*a.C)
			b[1][i] = 0
			if iy%s == 0 && ix%s == 0 {
				b[1][i] = b[0][((bi*a.OutC+ch+a.Before)*a.HO+iy/s)*a.WO+ix/s]
			}
		}
	})
)

// zeroPadArgs are the arguments for x of shape xs, y of shape ys.
func zeroPadArgs(p ops.PadAttrs, xs, ys []int) ZeroPadArgs {
	return ZeroPadArgs{N: xs[0], C: p.In, OutC: ys[1], Before: p.Before(), H: xs[2], W: xs[3], HO: ys[2], WO: ys[3], Stride: p.Stride}
}

func lowerZeroPad(l *lowerer, n *gorgonia.Node, d ops.Desc, in []int) (int, error) {
	y := l.out(n)
	k := zeroPadFwd
	if l.s.Bufs[in[0]].BF16 {
		k = zeroPadFwdBF16
	}
	l.emit(k.instr(zeroPadArgs(d.Pad, shapeOf(graph.Children(n)[0]), shapeOf(n)), []int{in[0], y}, []int{y}), n)
	return y, nil
}

// (dy) -> dx
func lowerZeroPadBwd(l *lowerer, n *gorgonia.Node, d ops.Desc, in []int) (int, error) {
	dx := l.out(n)
	l.emit(zeroPadBwd.instr(zeroPadArgs(d.Pad, shapeOf(n), shapeOf(graph.Children(n)[0])), []int{in[0], dx}, []int{dx}), n)
	return dx, nil
}
