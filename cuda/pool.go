package cuda

import (
	"math"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
)

// The pooling family: max and average pooling over windows, and the global
// average pool.

// PoolArgs: Planes (N*C) planes of H x W pooled to OH x OW by a K x K window
// moved by S over the input padded by Pad.
type PoolArgs struct{ Planes, H, W, OH, OW, K, S, Pad int }

func (a *PoolArgs) params() ([]*int, []*float64) {
	return []*int{&a.Planes, &a.H, &a.W, &a.OH, &a.OW, &a.K, &a.S, &a.Pad}, nil
}

// PlaneArgs: Planes planes of Inner elements.
type PlaneArgs struct{ Planes, Inner int }

func (a *PlaneArgs) params() ([]*int, []*float64) { return []*int{&a.Planes, &a.Inner}, nil }

type poolKernel = kernel[PoolArgs, *PoolArgs]

func poolOutLaunch(a PoolArgs) Dim   { return gridStride(a.Planes * a.OH * a.OW) }
func poolPlaneLaunch(a PoolArgs) Dim { return perItem(a.Planes) }

var (
	// x -> y
	maxPoolFwd = defKernel("maxpool_fwd", 2, poolOutLaunch, func(_ *Ref, _ Instr, a PoolArgs, b [][]float32) { refPoolFwd(a, b, true) })
	// x, dy -> dx: to the first maximum of each window
	maxPoolBwd = defKernel("maxpool_bwd", 3, poolPlaneLaunch, func(_ *Ref, _ Instr, a PoolArgs, b [][]float32) { refMaxPoolBwd(a, b) })
	// x -> y
	avgPoolFwd = defKernel("avgpool_fwd", 2, poolOutLaunch, func(_ *Ref, _ Instr, a PoolArgs, b [][]float32) { refPoolFwd(a, b, false) })
	// dy -> dx
	avgPoolBwd = defKernel("avgpool_bwd", 2, poolPlaneLaunch, func(_ *Ref, _ Instr, a PoolArgs, b [][]float32) { refAvgPoolBwd(a, b) })
	// x -> plane means
	gapFwd = defKernel("gap_fwd", 2, func(a PlaneArgs) Dim { return perItem(a.Planes) }, func(_ *Ref, _ Instr, a PlaneArgs, b [][]float32) {
		for p := 0; p < a.Planes; p++ {
			var s float32
			for _, x := range b[0][p*a.Inner : (p+1)*a.Inner] {
				s += x
			}
			b[1][p] = s * (1 / float32(a.Inner))
		}
	})
	// dy -> dx
	gapBwd = defKernel("gap_bwd", 2, func(a PlaneArgs) Dim { return gridStride(a.Planes * a.Inner) }, func(_ *Ref, _ Instr, a PlaneArgs, b [][]float32) {
		inv := 1 / float32(a.Inner)
		for i := 0; i < a.Planes*a.Inner; i++ {
			b[1][i] = b[0][i/a.Inner] * inv
		}
	})
)

// window is the valid input range [h0,h1) x [w0,w1) of output (oy, ox).
func (a PoolArgs) window(oy, ox int) (int, int, int, int) {
	r, c := oy*a.S-a.Pad, ox*a.S-a.Pad
	return max(r, 0), min(r+a.K, a.H), max(c, 0), min(c+a.K, a.W)
}

func refPoolFwd(a PoolArgs, b [][]float32, maxPool bool) {
	h, w, oh, ow := a.H, a.W, a.OH, a.OW
	inv := 1 / float32(a.K*a.K)
	for pl := 0; pl < a.Planes; pl++ {
		x, y := b[0][pl*h*w:], b[1][pl*oh*ow:]
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				h0, h1, w0, w1 := a.window(oy, ox)
				m, acc := float32(math.Inf(-1)), float32(0)
				for r := h0; r < h1; r++ {
					for c := w0; c < w1; c++ {
						m = max(m, x[r*w+c])
						acc += x[r*w+c]
					}
				}
				if maxPool {
					y[oy*ow+ox] = m
				} else {
					y[oy*ow+ox] = acc * inv
				}
			}
		}
	}
}

func refMaxPoolBwd(a PoolArgs, b [][]float32) {
	h, w, oh, ow := a.H, a.W, a.OH, a.OW
	for pl := 0; pl < a.Planes; pl++ {
		x, dy, dx := b[0][pl*h*w:], b[1][pl*oh*ow:], b[2][pl*h*w:pl*h*w+h*w]
		clear(dx)
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				h0, h1, w0, w1 := a.window(oy, ox)
				m, at := float32(math.Inf(-1)), h0*w+w0
				for r := h0; r < h1; r++ {
					for c := w0; c < w1; c++ {
						if x[r*w+c] > m {
							m, at = x[r*w+c], r*w+c
						}
					}
				}
				dx[at] += dy[oy*ow+ox]
			}
		}
	}
}

func refAvgPoolBwd(a PoolArgs, b [][]float32) {
	h, w, oh, ow := a.H, a.W, a.OH, a.OW
	inv := 1 / float32(a.K*a.K)
	for pl := 0; pl < a.Planes; pl++ {
		dy, dx := b[0][pl*oh*ow:], b[1][pl*h*w:pl*h*w+h*w]
		clear(dx)
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				h0, h1, w0, w1 := a.window(oy, ox)
				val := dy[oy*ow+ox] * inv
				for r := h0; r < h1; r++ {
					for c := w0; c < w1; c++ {
						dx[r*w+c] += val
					}
				}
			}
		}
	}
}

// lowerPool lowers a pooling op or (backward) its gradient, whose last
// input is dy.
func lowerPool(k poolKernel, backward bool) lowerFn {
	return func(l *lowerer, n *gorgonia.Node, d ops.Desc, in []int) (int, error) {
		xs, ys := shapeOf(graph.Children(n)[0]), shapeOf(n)
		if backward {
			xs, ys = shapeOf(n), shapeOf(graph.Children(n)[len(in)-1])
		}
		a := PoolArgs{Planes: xs[0] * xs[1], H: xs[2], W: xs[3], OH: ys[2], OW: ys[3], K: d.Pool.Kernel, S: d.Pool.Stride, Pad: d.Pool.Pad}
		y := l.out(n)
		l.emit(k.instr(a, append(append([]int(nil), in...), y), []int{y}), n)
		return y, nil
	}
}

func lowerGAP(l *lowerer, n *gorgonia.Node, _ ops.Desc, in []int) (int, error) {
	t := nci(shapeOf(graph.Children(n)[0]))
	y := l.out(n)
	k := gapFwd
	if l.s.Bufs[in[0]].BF16 {
		k = gapFwdBF16
	}
	l.emit(k.instr(PlaneArgs{Planes: t.N * t.C, Inner: t.Inner}, []int{in[0], y}, []int{y}), n)
	return y, nil
}

// (dy) -> dx
func lowerGAPBwd(l *lowerer, n *gorgonia.Node, _ ops.Desc, in []int) (int, error) {
	t := nci(shapeOf(n))
	dx := l.out(n)
	l.emit(gapBwd.instr(PlaneArgs{Planes: t.N * t.C, Inner: t.Inner}, []int{in[0], dx}, []int{dx}), n)
	return dx, nil
}
