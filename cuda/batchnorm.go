package cuda

import (
	"fmt"
	"math"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The batch-norm family. The forward saves (mean, 1/sqrt(var+eps)) per
// channel for the backward ops; the channel reductions run in two launches
// (partial float64 sums per chunk of images, then their sum per channel).

// ChunkArgs: a tensor (N, C, Inner) reduced per channel in chunks of Chunk
// images, one block per (channel, chunk).
type ChunkArgs struct{ N, C, Inner, Chunk int }

func (a *ChunkArgs) params() ([]*int, []*float64) { return []*int{&a.N, &a.C, &a.Inner, &a.Chunk}, nil }

func chunkLaunch(a ChunkArgs) Dim { return perBlock(a.C * ChannelParts(a.N, a.Chunk)) }

// BNStatsArgs: the statistics of (N, C, Inner) from Parts partial sums per
// channel, and the running statistics' update.
type BNStatsArgs struct {
	N, C, Inner, Parts int
	Momentum, Eps      float64
}

func (a *BNStatsArgs) params() ([]*int, []*float64) {
	return []*int{&a.N, &a.C, &a.Inner, &a.Parts}, []*float64{&a.Momentum, &a.Eps}
}

// BNInferArgs: C channels normalised by their running statistics.
type BNInferArgs struct {
	C   int
	Eps float64
}

func (a *BNInferArgs) params() ([]*int, []*float64) { return []*int{&a.C}, []*float64{&a.Eps} }

// BNParamArgs: C channels' parameter gradients from Parts partial sums.
type BNParamArgs struct{ C, Parts int }

func (a *BNParamArgs) params() ([]*int, []*float64) { return []*int{&a.C, &a.Parts}, nil }

// BNInputGradArgs: the input gradient of (N, C, Inner); Batch is 1 when the
// forward used batch statistics (always, in a training step).
type BNInputGradArgs struct{ N, C, Inner, Batch int }

func (a *BNInputGradArgs) params() ([]*int, []*float64) {
	return []*int{&a.N, &a.C, &a.Inner, &a.Batch}, nil
}

var (
	// x -> partial sums (shifted by each channel's first element)
	bnStatsPart = defKernel("bn_stats_part", 2, chunkLaunch, func(_ *Ref, _ Instr, a ChunkArgs, b [][]float32) {
		x, part := b[0], b[1]
		forChunks(a, func(blk, ch int, at func(func(o int))) {
			k := x[ch*a.Inner]
			var s1, s2 float64
			at(func(o int) {
				d := float64(x[o] - k)
				s1 += d
				s2 += d * d
			})
			PutFloat64(part, 2*blk, s1)
			PutFloat64(part, 2*blk+1, s2)
		})
	})
	// x, partial sums, saved, running mean, running var
	bnStatsFinal = defKernel("bn_stats_final", 5, func(a BNStatsArgs) Dim { return perItem(a.C) }, func(_ *Ref, _ Instr, a BNStatsArgs, b [][]float32) {
		c, parts := a.C, a.Parts
		x, part, saved, rm, rv := b[0], b[1], b[2], b[3], b[4]
		for ch := 0; ch < c; ch++ {
			var s1, s2 float64
			for p := 0; p < parts; p++ {
				s1 += Float64At(part, 2*(ch*parts+p))
				s2 += Float64At(part, 2*(ch*parts+p)+1)
			}
			cnt := float64(a.N * a.Inner)
			dm := s1 / cnt
			vr := max(s2/cnt-dm*dm, 0)
			mean := float64(x[ch*a.Inner]) + dm
			saved[ch] = float32(mean)
			saved[c+ch] = float32(1 / math.Sqrt(vr+float64(float32(a.Eps))))
			mom := float64(float32(a.Momentum))
			rm[ch] = float32((1-mom)*float64(rm[ch]) + mom*mean)
			rv[ch] = float32((1-mom)*float64(rv[ch]) + mom*vr*cnt/(cnt-1))
		}
	})
	// running mean, running var -> saved
	bnInfer = defKernel("bn_infer", 3, func(a BNInferArgs) Dim { return perItem(a.C) }, func(_ *Ref, _ Instr, a BNInferArgs, b [][]float32) {
		for ch := 0; ch < a.C; ch++ {
			b[2][ch] = b[0][ch]
			b[2][a.C+ch] = float32(1 / math.Sqrt(float64(b[1][ch])+float64(float32(a.Eps))))
		}
	})
	// x, gamma, beta, saved -> y
	bnApply = defKernel("bn_apply", 5, nciLaunch, func(_ *Ref, _ Instr, a NCIArgs, b [][]float32) { refBNApply(a, b, false) })
	// x, gamma, beta, saved -> max(y, 0)
	bnApplyReLU = defKernel("bn_apply_relu", 5, nciLaunch, func(_ *Ref, _ Instr, a NCIArgs, b [][]float32) { refBNApply(a, b, true) })
	// x, dy, saved -> partial sums
	bnParamPart = defKernel("bn_param_part", 4, chunkLaunch, func(_ *Ref, _ Instr, a ChunkArgs, b [][]float32) {
		x, dy, saved, part := b[0], b[1], b[2], b[3]
		forChunks(a, func(blk, ch int, at func(func(o int))) {
			mean := saved[ch]
			var sdy, sdyx float64
			at(func(o int) {
				g := dy[o]
				sdy += float64(g)
				sdyx += float64(g * (x[o] - mean))
			})
			PutFloat64(part, 2*blk, sdyx)
			PutFloat64(part, 2*blk+1, sdy)
		})
	})
	// saved, partial sums -> (2, C): dgamma, dbeta
	bnParamFinal = defKernel("bn_param_final", 3, func(a BNParamArgs) Dim { return perItem(a.C) }, func(_ *Ref, _ Instr, a BNParamArgs, b [][]float32) {
		c, parts := a.C, a.Parts
		saved, part, red := b[0], b[1], b[2]
		for ch := 0; ch < c; ch++ {
			var sdyx, sdy float64
			for p := 0; p < parts; p++ {
				sdyx += Float64At(part, 2*(ch*parts+p))
				sdy += Float64At(part, 2*(ch*parts+p)+1)
			}
			red[ch] = float32(sdyx * float64(saved[c+ch]))
			red[c+ch] = float32(sdy)
		}
	})
	// x, gamma, dy, (2, C), saved -> dx
	bnInputGrad = defKernel("bn_input_grad", 6, func(a BNInputGradArgs) Dim { return gridStride(a.N * a.C * a.Inner) }, func(_ *Ref, _ Instr, a BNInputGradArgs, b [][]float32) {
		c, inner := a.C, a.Inner
		x, gamma, dy, red, saved, dx := b[0], b[1], b[2], b[3], b[4], b[5]
		m := float64(a.N * inner)
		for i := 0; i < a.N*c*inner; i++ {
			ch := (i / inner) % c
			invstd := float64(saved[c+ch])
			g := float64(gamma[ch]) * invstd
			var bb, c0 float64
			if a.Batch != 0 {
				bb = -g * invstd * float64(red[ch]) / m
				c0 = -g * float64(red[c+ch]) / m
			}
			dx[i] = float32(g)*dy[i] + float32(bb)*(x[i]-saved[ch]) + float32(c0)
		}
	})

	// The same kernels reading x as bf16: a bf16 step stores the
	// convolution outputs that only batch norm reads in bf16 (storesBF16).
	// Everything else they read and write stays fp32.
	bnStatsPartBF16  = bf16Variant(bnStatsPart, "bn_stats_part_bf16", 0)
	bnStatsFinalBF16 = bf16Variant(bnStatsFinal, "bn_stats_final_bf16", 0)
	bnParamPartBF16  = bf16Variant(bnParamPart, "bn_param_part_bf16", 0)
	bnInputGradBF16  = bf16Variant(bnInputGrad, "bn_input_grad_bf16", 0)
	// The applies by the types of x and y (f fp32, h bf16): y is stored in
	// bf16 when its readers all take bf16 (storesBF16).
	bnApplies = map[[2]bool]kernel[NCIArgs, *NCIArgs]{{false, false}: bnApply,
		{true, false}: bf16Variant(bnApply, "bn_apply_hf", 0), {false, true}: bf16Variant(bnApply, "bn_apply_fh", 4), {true, true}: bf16Variant(bnApply, "bn_apply_hh", 0, 4)}
	bnApplyReLUs = map[[2]bool]kernel[NCIArgs, *NCIArgs]{{false, false}: bnApplyReLU,
		{true, false}: bf16Variant(bnApplyReLU, "bn_apply_relu_hf", 0), {false, true}: bf16Variant(bnApplyReLU, "bn_apply_relu_fh", 4), {true, true}: bf16Variant(bnApplyReLU, "bn_apply_relu_hh", 0, 4)}
)

// bnKernels are the batch-norm kernels for one type of input x.
type bnKernels struct {
	statsPart  kernel[ChunkArgs, *ChunkArgs]
	statsFinal kernel[BNStatsArgs, *BNStatsArgs]
	paramPart  kernel[ChunkArgs, *ChunkArgs]
	inputGrad  kernel[BNInputGradArgs, *BNInputGradArgs]
}

// bnFor is the batch-norm kernels that read x, buffer id (fp32 or bf16).
func (l *lowerer) bnFor(x int) bnKernels {
	if l.s.Bufs[x].BF16 {
		return bnKernels{bnStatsPartBF16, bnStatsFinalBF16, bnParamPartBF16, bnInputGradBF16}
	}
	return bnKernels{bnStatsPart, bnStatsFinal, bnParamPart, bnInputGrad}
}

// isBNApply reports whether kernel k is a forward batch-norm apply (of
// any buffer types): what RecomputeBN recomputes.
func isBNApply(k string) bool {
	for _, m := range []map[[2]bool]kernel[NCIArgs, *NCIArgs]{bnApplies, bnApplyReLUs} {
		for _, a := range m {
			if a.name == k {
				return true
			}
		}
	}
	return false
}

func refBNApply(a NCIArgs, b [][]float32, relu bool) {
	x, gamma, beta, saved, y := b[0], b[1], b[2], b[3], b[4]
	c := a.C
	for i := 0; i < a.size(); i++ {
		ch := (i / a.Inner) % c
		scale := float32(float64(gamma[ch]) * float64(saved[c+ch]))
		y[i] = (x[i]-saved[ch])*scale + beta[ch]
		if relu {
			y[i] = max(y[i], 0)
		}
	}
}

// forChunks visits the blocks of a two-launch channel reduction: block
// blk = ch*parts + p covers images [p*chunk, p*chunk+chunk).
func forChunks(a ChunkArgs, fn func(blk, ch int, at func(func(o int)))) {
	n, c, inner, chunk := a.N, a.C, a.Inner, a.Chunk
	parts := ChannelParts(n, chunk)
	for ch := 0; ch < c; ch++ {
		for p := 0; p < parts; p++ {
			fn(ch*parts+p, ch, func(visit func(o int)) {
				for bi := p * chunk; bi < min(n, (p+1)*chunk); bi++ {
					base := (bi*c + ch) * inner
					for j := 0; j < inner; j++ {
						visit(base + j)
					}
				}
			})
		}
	}
}

func (l *lowerer) stateBuf(t *tensor.Dense) (int, error) {
	if id, ok := l.state[t]; ok {
		return id, nil
	}
	name := l.stateNames[t]
	if name == "" {
		name = fmt.Sprintf("state#%d", len(l.state))
	}
	var id int
	if l.inference() {
		bid, ok := l.base.States[name]
		if !ok {
			return 0, fmt.Errorf("running statistic %s is not in the training step", name)
		}
		id = l.shareBuf(bid)
	} else {
		id = l.s.buf(name, t.Size(), State)
	}
	l.state[t] = id
	l.s.States[name] = id
	return id, nil
}

// lowerBN: in a training step the batch statistics (and the running
// statistics' update), saved for the backward pass; in an inference step
// the running statistics, as (mean, 1/sqrt(var+eps)) for the same apply.
func lowerBN(l *lowerer, n *gorgonia.Node, d ops.Desc, in []int) (int, error) {
	cfg := d.Norm
	t := nci(shapeOf(n))
	rm, err := l.stateBuf(cfg.RunningMean)
	if err != nil {
		return 0, err
	}
	rv, err := l.stateBuf(cfg.RunningVar)
	if err != nil {
		return 0, err
	}
	saved := l.s.buf(nodeName(n)+"/saved", 2*t.C, Activation)
	k := l.bnFor(in[0])
	if l.inference() {
		l.emit(bnInfer.instr(BNInferArgs{C: t.C, Eps: cfg.Eps}, []int{rm, rv, saved}, []int{saved}), n)
	} else {
		l.saved[n.Op()] = saved
		chunk := ChannelChunk(t.Inner)
		parts := ChannelParts(t.N, chunk)
		part := l.doubles(nodeName(n)+"/partial-stats", 2*t.C*parts)
		l.emit(k.statsPart.instr(ChunkArgs{N: t.N, C: t.C, Inner: t.Inner, Chunk: chunk}, []int{in[0], part}, []int{part}), n)
		l.emit(k.statsFinal.instr(BNStatsArgs{N: t.N, C: t.C, Inner: t.Inner, Parts: parts, Momentum: cfg.Momentum, Eps: cfg.Eps},
			[]int{in[0], part, saved, rm, rv}, []int{saved, rm, rv}), n)
	}
	applies, result := bnApplies, n
	y := l.out(n)
	if relu := l.fusableReLU(n); relu != nil {
		applies, result = bnApplyReLUs, relu
		l.fused[relu] = y
		l.s.Bufs[y].Name += "+" + nodeName(relu)
	}
	l.s.Bufs[y].BF16 = l.storesBF16(result)
	l.emit(applies[[2]bool{l.s.Bufs[in[0]].BF16, l.s.Bufs[y].BF16}].instr(t, []int{in[0], in[1], in[2], saved, y}, []int{y}), n)
	return y, nil
}

// savedOf is the buffer a backward op reads its forward op's saved state from.
func (l *lowerer) savedOf(n *gorgonia.Node) (int, error) {
	fwd, err := forwardOf(n)
	if err != nil {
		return 0, err
	}
	id, ok := l.saved[fwd]
	if !ok {
		return 0, fmt.Errorf("backward op %v before its forward", n.Op())
	}
	return id, nil
}

// (x, y, dy) -> (2, C)
func lowerBNParamGrad(l *lowerer, n *gorgonia.Node, _ ops.Desc, in []int) (int, error) {
	saved, err := l.savedOf(n)
	if err != nil {
		return 0, err
	}
	t := nci(shapeOf(graph.Children(n)[0]))
	red := l.out(n)
	chunk := ChannelChunk(t.Inner)
	parts := ChannelParts(t.N, chunk)
	part := l.doubles(nodeName(n)+"/partial-sums", 2*t.C*parts)
	l.emit(l.bnFor(in[0]).paramPart.instr(ChunkArgs{N: t.N, C: t.C, Inner: t.Inner, Chunk: chunk}, []int{in[0], in[2], saved, part}, []int{part}), n)
	l.emit(bnParamFinal.instr(BNParamArgs{C: t.C, Parts: parts}, []int{saved, part, red}, []int{red}), n)
	return red, nil
}

// (x, gamma, dy, red) -> dx
func lowerBNInputGrad(l *lowerer, n *gorgonia.Node, _ ops.Desc, in []int) (int, error) {
	saved, err := l.savedOf(n)
	if err != nil {
		return 0, err
	}
	t := nci(shapeOf(n))
	dx := l.out(n)
	l.emit(l.bnFor(in[0]).inputGrad.instr(BNInputGradArgs{N: t.N, C: t.C, Inner: t.Inner, Batch: 1}, []int{in[0], in[1], in[2], in[3], saved, dx}, []int{dx}), n)
	return dx, nil
}
