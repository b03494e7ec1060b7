package cuda

import (
	"math"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
)

// The softmax cross-entropy family: per-row softmax, loss and rank of the
// label (ce_fwd), their mean and the top-1/top-5 counts into the Metrics
// buffer (ce_reduce, one thread: a deterministic sum), and the gradient
// from the saved softmax. Rows with a label outside [0, K) are ignored.

var (
	// logits, labels -> softmax, row losses, ranks
	ceFwd = defKernel("ce_fwd", 5, func(a RowsArgs) Dim { return perItem(a.Rows) }, func(_ *Ref, _ Instr, a RowsArgs, b [][]float32) {
		n, k := a.Rows, a.Cols
		z, labels, p, rl, rk := b[0], ints(b[1]), b[2], b[3], b[4]
		for rr := 0; rr < n; rr++ {
			zr, pr := z[rr*k:(rr+1)*k], p[rr*k:(rr+1)*k]
			l := int(labels[rr])
			if l < 0 || l >= k {
				rl[rr], rk[rr] = 0, 1e9
				clear(pr)
				continue
			}
			m := zr[0]
			for _, x := range zr[1:] {
				m = max(m, x)
			}
			zl, mf := zr[l], float64(m)
			var s float64
			rank := 0
			for j, x := range zr {
				e := math.Exp(float64(x) - mf)
				pr[j] = float32(e)
				s += e
				if x > zl || (x == zl && j < l) {
					rank++
				}
			}
			for j := range pr {
				pr[j] = float32(float64(pr[j]) * (1 / s))
			}
			rl[rr] = float32(mf + math.Log(s) - float64(zl))
			rk[rr] = float32(rank)
		}
	})
	// labels, row losses, ranks -> metrics, loss
	ceReduce = defKernel("ce_reduce", 5, func(ElemArgs) Dim { return Dim{Grid: 1, Block: 1} }, func(_ *Ref, _ Instr, a ElemArgs, b [][]float32) {
		labels, rl, rk, met, loss := ints(b[0]), b[1], b[2], b[3], b[4]
		var s float64
		valid, top1, top5 := 0, 0, 0
		for rr := 0; rr < a.N; rr++ {
			if labels[rr] < 0 {
				continue
			}
			valid++
			s += float64(rl[rr])
			if rk[rr] < 1 {
				top1++
			}
			if rk[rr] < 5 {
				top5++
			}
		}
		mean := float32(0)
		if valid > 0 {
			mean = float32(s / float64(valid))
		}
		met[MetricLoss], met[MetricCount], met[MetricTop1], met[MetricTop5] = mean, float32(valid), float32(top1), float32(top5)
		loss[0] = mean
	})
	// softmax, labels, dloss (the seed, or the loss scale: lossscale.go), metrics -> dlogits
	ceBwd = defKernel("ce_bwd", 5, func(a RowsArgs) Dim { return gridStride(a.Rows * a.Cols) }, func(_ *Ref, _ Instr, a RowsArgs, b [][]float32) {
		k := a.Cols
		p, labels, dl, met, dz := b[0], ints(b[1]), b[2], b[3], b[4]
		var scale float32
		if met[MetricCount] > 0 {
			scale = float32(float64(dl[0]) / float64(met[MetricCount]))
		}
		for i := 0; i < a.Rows*k; i++ {
			rr, j := i/k, i%k
			l := int(labels[rr])
			if l < 0 {
				dz[i] = 0
				continue
			}
			x := p[i] * scale
			if j == l {
				x -= scale
			}
			dz[i] = x
		}
	})
)

// (logits, labels) -> mean loss; metrics.
func lowerCE(l *lowerer, n *gorgonia.Node, _ ops.Desc, in []int) (int, error) {
	zs := shapeOf(graph.Children(n)[0])
	rows, k := zs[0], zs[1]
	p := l.s.buf(nodeName(n)+"/softmax", rows*k, Activation)
	rl := l.s.buf(nodeName(n)+"/rowloss", rows, Activation)
	rk := l.s.buf(nodeName(n)+"/rank", rows, Activation)
	l.saved[n.Op()] = p
	loss := l.out(n)
	l.emit(ceFwd.instr(RowsArgs{Rows: rows, Cols: k}, []int{in[0], in[1], p, rl, rk}, []int{p, rl, rk}), n)
	l.emit(ceReduce.instr(ElemArgs{N: rows}, []int{in[1], rl, rk, l.s.Metrics, loss}, []int{l.s.Metrics, loss}), n)
	return loss, nil
}

// (logits, labels, loss, dloss) -> dlogits
func lowerCEBwd(l *lowerer, n *gorgonia.Node, _ ops.Desc, in []int) (int, error) {
	p, err := l.savedOf(n)
	if err != nil {
		return 0, err
	}
	seed, err := l.lossSeed(in[3])
	if err != nil {
		return 0, err
	}
	zs := shapeOf(n)
	dz := l.out(n)
	l.emit(ceBwd.instr(RowsArgs{Rows: zs[0], Cols: zs[1]}, []int{p, in[1], seed, l.s.Metrics, dz}, []int{dz}), n)
	return dz, nil
}
