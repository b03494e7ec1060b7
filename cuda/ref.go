package cuda

import (
	"fmt"
	"math"

	"github.com/eraserelu/eraserelu/graph/ops/rng"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Ref runs a planned Step on the CPU with the semantics of kernels/ops.cu:
// one float32 arena laid out as Plan decided (int32 labels stored bit for
// bit), so a planning error (two live buffers sharing memory) corrupts the
// result exactly as it would on the device. It is the executable
// specification the device kernels are written against, and what the CPU
// tests compare with graph.Program.
type Ref struct {
	S     *Step
	Arena []float32
}

// NewRef allocates the arena and fills the Const buffers.
func NewRef(s *Step) *Ref {
	r := &Ref{S: s, Arena: make([]float32, s.ArenaBytes/ElemSize)}
	for _, b := range s.Bufs {
		if b.Kind == Const {
			copy(r.buf(b), b.Init)
		}
	}
	return r
}

func (r *Ref) buf(b *Buf) []float32 {
	o := b.Offset / ElemSize
	return r.Arena[o : o+int64(b.Elems)]
}

// Buf is the contents of buffer id.
func (r *Ref) Buf(id int) []float32 { return r.buf(r.S.Bufs[id]) }

// Write copies v into buffer id (the Executor's and the Device's Write).
func (r *Ref) Write(id int, v []float32) error {
	b := r.S.Bufs[id]
	if len(v) > b.Elems {
		return fmt.Errorf("write %s: %d values into %d", b.Name, len(v), b.Elems)
	}
	copy(r.Buf(id), v)
	return nil
}

// SetBatch stores the images and labels of a batch in the step's inputs.
func (r *Ref) SetBatch(x []float32, y []int) error {
	s := r.S
	if len(x) != s.Bufs[s.X].Elems || len(y) != s.Bufs[s.Y].Elems {
		return fmt.Errorf("batch of %d image values and %d labels, step takes %d and %d", len(x), len(y), s.Bufs[s.X].Elems, s.Bufs[s.Y].Elems)
	}
	copy(r.Buf(s.X), x)
	r.SetInts(s.Y, y)
	return nil
}

// SetInts stores int32 values (labels) in buffer id.
func (r *Ref) SetInts(id int, v []int) {
	d := r.Buf(id)
	for i, x := range v {
		d[i] = math.Float32frombits(uint32(int32(x)))
	}
}

func ints(v []float32) []int32 {
	out := make([]int32, len(v))
	for i, x := range v {
		out[i] = int32(math.Float32bits(x))
	}
	return out
}

// Run executes instructions [lo, hi).
func (r *Ref) Run(lo, hi int) error {
	for i := lo; i < hi; i++ {
		if err := r.exec(r.S.Instrs[i]); err != nil {
			return fmt.Errorf("instruction %d %v: %w", i, r.S.Instrs[i], err)
		}
	}
	return nil
}

// Step runs the whole step with learning rate lr.
func (r *Ref) Step(lr float64, first bool) error {
	h := r.Buf(r.S.Hyper)
	h[HyperLR] = float32(lr)
	h[HyperFirst] = 0
	if first {
		h[HyperFirst] = 1
	}
	return r.Run(0, len(r.S.Instrs))
}

// whole returns the arena from buffer id's offset on (for GEMM operands
// and the packed SGD runs, which span several buffers).
func (r *Ref) whole(id int) []float32 { return r.Arena[r.S.Bufs[id].Offset/ElemSize:] }

func (r *Ref) exec(in Instr) error {
	k, ok := Kernels[in.Kernel]
	if in.Kernel != "gemm" {
		if !ok {
			return fmt.Errorf("no kernel %q", in.Kernel)
		}
		if len(in.Ints) != k.Ints || len(in.Floats) != k.Floats || len(in.Bufs) != k.Buffers {
			return fmt.Errorf("arguments %d/%d/%d, kernel takes %d/%d/%d", len(in.Ints), len(in.Floats), len(in.Bufs), k.Ints, k.Floats, k.Buffers)
		}
	}
	v, f := in.Ints, in.Floats
	b := make([][]float32, len(in.Bufs))
	for i, id := range in.Bufs {
		b[i] = r.Buf(id)
	}
	switch in.Kernel {
	case "gemm":
		g, err := DecodeGemm(v)
		if err != nil {
			return err
		}
		ta, tb := blas.NoTrans, blas.NoTrans
		if g.TransA {
			ta = blas.Trans
		}
		if g.TransB {
			tb = blas.Trans
		}
		A, B, C := r.whole(in.Bufs[0]), r.whole(in.Bufs[1]), r.whole(in.Bufs[2])
		for bi := 0; bi < g.Batch; bi++ {
			gonum.Implementation{}.Sgemm(ta, tb, g.M, g.N, g.K, float32(f[0]),
				A[g.AOff+bi*g.StrideA:], g.LDA, B[g.BOff+bi*g.StrideB:], g.LDB, float32(f[1]), C[g.COff+bi*g.StrideC:], g.LDC)
		}
	case "fill":
		for i := range b[0][:v[0]] {
			b[0][i] = float32(f[0])
		}
	case "copy2d":
		rows, cols, ss, so, ds, do := v[0], v[1], v[2], v[3], v[4], v[5]
		for rr := 0; rr < rows; rr++ {
			copy(b[1][do+rr*ds:do+rr*ds+cols], b[0][so+rr*ss:so+rr*ss+cols])
		}
	case "add":
		for i := 0; i < v[0]; i++ {
			b[2][i] = b[0][i] + b[1][i]
		}
	case "add_relu":
		for i := 0; i < v[0]; i++ {
			b[2][i] = max(b[0][i]+b[1][i], 0)
		}
	case "relu_fwd":
		for i := 0; i < v[0]; i++ {
			b[1][i] = max(b[0][i], 0)
		}
	case "relu_bwd":
		for i := 0; i < v[0]; i++ {
			if b[0][i] > 0 {
				b[2][i] = b[1][i]
			} else {
				b[2][i] = 0
			}
		}
	case "prelu_fwd", "prelu_dx":
		n, c, inner := v[0], v[1], v[2]
		x, alpha := b[0], b[1]
		for i := 0; i < n*c*inner; i++ {
			src := x
			if in.Kernel == "prelu_dx" {
				src = b[2]
			}
			if x[i] > 0 {
				b[len(b)-1][i] = src[i]
			} else {
				b[len(b)-1][i] = alpha[(i/inner)%c] * src[i]
			}
		}
	case "prelu_dalpha":
		forChannels(v, func(ch int, at func(func(o int))) {
			var s float64
			at(func(o int) {
				if x := b[0][o]; x <= 0 {
					s += float64(x * b[1][o])
				}
			})
			b[2][ch] = float32(s)
		})
	case "bias_nchw":
		n, c, inner := v[0], v[1], v[2]
		for i := 0; i < n*c*inner; i++ {
			b[1][i] += b[0][(i/inner)%c]
		}
	case "bias_rows":
		for i := 0; i < v[0]*v[1]; i++ {
			b[1][i] += b[0][i%v[1]]
		}
	case "sum_rows":
		rows, cols := v[0], v[1]
		for j := 0; j < cols; j++ {
			var s float32
			for rr := 0; rr < rows; rr++ {
				s += b[0][rr*cols+j]
			}
			b[1][j] = s
		}
	case "channel_sum":
		forChannels(v, func(ch int, at func(func(o int))) {
			var s float64
			at(func(o int) { s += float64(b[0][o]) })
			b[1][ch] = float32(s)
		})
	case "bn_stats_part":
		x, part := b[0], b[1]
		forChunks(v, func(blk, ch int, at func(func(o int))) {
			k := x[ch*v[2]]
			var s1, s2 float64
			at(func(o int) {
				d := float64(x[o] - k)
				s1 += d
				s2 += d * d
			})
			PutFloat64(part, 2*blk, s1)
			PutFloat64(part, 2*blk+1, s2)
		})
	case "bn_stats_final":
		n, c, inner, parts := v[0], v[1], v[2], v[3]
		x, part, saved, rm, rv := b[0], b[1], b[2], b[3], b[4]
		for ch := 0; ch < c; ch++ {
			var s1, s2 float64
			for p := 0; p < parts; p++ {
				s1 += Float64At(part, 2*(ch*parts+p))
				s2 += Float64At(part, 2*(ch*parts+p)+1)
			}
			cnt := float64(n * inner)
			dm := s1 / cnt
			vr := max(s2/cnt-dm*dm, 0)
			mean := float64(x[ch*inner]) + dm
			saved[ch] = float32(mean)
			saved[c+ch] = float32(1 / math.Sqrt(vr+float64(float32(f[1]))))
			mom := float64(float32(f[0]))
			rm[ch] = float32((1-mom)*float64(rm[ch]) + mom*mean)
			rv[ch] = float32((1-mom)*float64(rv[ch]) + mom*vr*cnt/(cnt-1))
		}
	case "bn_infer":
		c := v[0]
		for ch := 0; ch < c; ch++ {
			b[2][ch] = b[0][ch]
			b[2][c+ch] = float32(1 / math.Sqrt(float64(b[1][ch])+float64(float32(f[0]))))
		}
	case "bn_apply", "bn_apply_relu":
		n, c, inner := v[0], v[1], v[2]
		x, gamma, beta, saved, y := b[0], b[1], b[2], b[3], b[4]
		relu := in.Kernel == "bn_apply_relu"
		for i := 0; i < n*c*inner; i++ {
			ch := (i / inner) % c
			scale := float32(float64(gamma[ch]) * float64(saved[c+ch]))
			y[i] = (x[i]-saved[ch])*scale + beta[ch]
			if relu {
				y[i] = max(y[i], 0)
			}
		}
	case "bn_param_part":
		x, dy, saved, part := b[0], b[1], b[2], b[3]
		forChunks(v, func(blk, ch int, at func(func(o int))) {
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
	case "bn_param_final":
		c, parts := v[0], v[1]
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
	case "bn_input_grad":
		n, c, inner, batch := v[0], v[1], v[2], v[3]
		x, gamma, dy, red, saved, dx := b[0], b[1], b[2], b[3], b[4], b[5]
		m := float64(n * inner)
		for i := 0; i < n*c*inner; i++ {
			ch := (i / inner) % c
			invstd := float64(saved[c+ch])
			g := float64(gamma[ch]) * invstd
			var bb, c0 float64
			if batch != 0 {
				bb = -g * invstd * float64(red[ch]) / m
				c0 = -g * float64(red[c+ch]) / m
			}
			dx[i] = float32(g)*dy[i] + float32(bb)*(x[i]-saved[ch]) + float32(c0)
		}
	case "im2col", "col2im":
		nimg, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow := v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11]
		p, rows := oh*ow, c*kh*kw
		if in.Kernel == "col2im" {
			clear(b[1][:nimg*c*h*w])
		}
		for bi := 0; bi < nimg; bi++ {
			for rr := 0; rr < rows; rr++ {
				kx, ky, ch := rr%kw, (rr/kw)%kh, rr/(kw*kh)
				for q := 0; q < p; q++ {
					ox, oy := q%ow, q/ow
					iy, ix := oy*sh-ph+ky, ox*sw-pw+kx
					ci := (bi*rows+rr)*p + q
					inside := iy >= 0 && iy < h && ix >= 0 && ix < w
					xi := ((bi*c+ch)*h+iy)*w + ix
					if in.Kernel == "im2col" {
						b[1][ci] = 0
						if inside {
							b[1][ci] = b[0][xi]
						}
					} else if inside {
						b[1][xi] += b[0][ci]
					}
				}
			}
		}
	case "zeropad_fwd":
		n, c, outc, lo, h, w, ho, wo, s := v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8]
		for i := 0; i < n*outc*ho*wo; i++ {
			ox, oy := i%wo, (i/wo)%ho
			oc, bi := (i/(wo*ho))%outc, i/(wo*ho*outc)
			ch := oc - lo
			b[1][i] = 0
			if ch >= 0 && ch < c {
				b[1][i] = b[0][((bi*c+ch)*h+oy*s)*w+ox*s]
			}
		}
	case "zeropad_bwd":
		n, c, outc, lo, h, w, ho, wo, s := v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8]
		for i := 0; i < n*c*h*w; i++ {
			ix, iy := i%w, (i/w)%h
			ch, bi := (i/(w*h))%c, i/(w*h*c)
			b[1][i] = 0
			if iy%s == 0 && ix%s == 0 {
				b[1][i] = b[0][((bi*outc+ch+lo)*ho+iy/s)*wo+ix/s]
			}
		}
	case "gap_fwd":
		planes, inner := v[0], v[1]
		for p := 0; p < planes; p++ {
			var s float32
			for _, x := range b[0][p*inner : (p+1)*inner] {
				s += x
			}
			b[1][p] = s * (1 / float32(inner))
		}
	case "gap_bwd":
		planes, inner := v[0], v[1]
		inv := 1 / float32(inner)
		for i := 0; i < planes*inner; i++ {
			b[1][i] = b[0][i/inner] * inv
		}
	case "maxpool_fwd", "maxpool_bwd", "avgpool_fwd", "avgpool_bwd":
		refPool(in.Kernel, v, b)
	case "ce_fwd":
		n, k := v[0], v[1]
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
	case "ce_reduce":
		labels, rl, rk, met, loss := ints(b[0]), b[1], b[2], b[3], b[4]
		var s float64
		valid, top1, top5 := 0, 0, 0
		for rr := 0; rr < v[0]; rr++ {
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
		met[0], met[1], met[2], met[3] = mean, float32(valid), float32(top1), float32(top5)
		loss[0] = mean
	case "ce_bwd":
		n, k := v[0], v[1]
		p, labels, dl, met, dz := b[0], ints(b[1]), b[2], b[3], b[4]
		var scale float32
		if met[1] > 0 {
			scale = float32(float64(dl[0]) / float64(met[1]))
		}
		for i := 0; i < n*k; i++ {
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
	case "sgd":
		n, nesterov, decay := v[0], v[1] != 0, v[2] != 0
		mom, keep, wd := float32(f[0]), float32(f[1]), float32(f[2])
		w, g, vel := r.whole(in.Bufs[0])[:n], r.whole(in.Bufs[1])[:n], r.whole(in.Bufs[2])[:n]
		hyper := b[3]
		lr, first := hyper[0], hyper[1] != 0
		for i := range w {
			gi := g[i]
			if decay {
				gi = gi + float32(wd*w[i])
			}
			d := gi
			if mom != 0 {
				var vi float32
				if first {
					vi = gi
				} else {
					vi = float32(mom*vel[i]) + float32(keep*gi)
				}
				vel[i] = vi
				if nesterov {
					d = gi + float32(mom*vi)
				} else {
					d = vi
				}
			}
			w[i] = w[i] + float32(-lr*d)
		}
	default:
		return r.execMore(in, v, f, b)
	}
	return nil
}

// forChunks visits the blocks of a two-launch channel reduction (ints n, c,
// inner, chunk): block blk = ch*parts + p covers images [p*chunk, p*chunk+chunk).
func forChunks(v []int, fn func(blk, ch int, at func(func(o int)))) {
	n, c, inner, chunk := v[0], v[1], v[2], v[3]
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

// PutFloat64 stores v as the i-th double of a buffer of float32 words, low
// word first, as the device's little-endian doubles lie in memory.
func PutFloat64(buf []float32, i int, v float64) {
	u := math.Float64bits(v)
	buf[2*i] = math.Float32frombits(uint32(u))
	buf[2*i+1] = math.Float32frombits(uint32(u >> 32))
}

// Float64At reads the i-th double of a buffer of float32 words.
func Float64At(buf []float32, i int) float64 {
	return math.Float64frombits(uint64(math.Float32bits(buf[2*i])) | uint64(math.Float32bits(buf[2*i+1]))<<32)
}

// forChannels calls fn for each channel of an (n, c, inner) tensor with a
// visitor over the channel's element offsets in memory order.
func forChannels(v []int, fn func(ch int, at func(func(o int)))) {
	n, c, inner := v[0], v[1], v[2]
	for ch := 0; ch < c; ch++ {
		fn(ch, func(visit func(o int)) {
			for bi := 0; bi < n; bi++ {
				base := (bi*c + ch) * inner
				for j := 0; j < inner; j++ {
					visit(base + j)
				}
			}
		})
	}
}

func refPool(kernel string, v []int, b [][]float32) {
	planes, h, w, oh, ow, k, s, pad := v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]
	window := func(oy, ox int) (int, int, int, int) {
		a, c := oy*s-pad, ox*s-pad
		return max(a, 0), min(a+k, h), max(c, 0), min(c+k, w)
	}
	inv := 1 / float32(k*k)
	for pl := 0; pl < planes; pl++ {
		switch kernel {
		case "maxpool_fwd", "avgpool_fwd":
			x, y := b[0][pl*h*w:], b[1][pl*oh*ow:]
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					h0, h1, w0, w1 := window(oy, ox)
					m, acc := float32(math.Inf(-1)), float32(0)
					for a := h0; a < h1; a++ {
						for c := w0; c < w1; c++ {
							m = max(m, x[a*w+c])
							acc += x[a*w+c]
						}
					}
					if kernel == "maxpool_fwd" {
						y[oy*ow+ox] = m
					} else {
						y[oy*ow+ox] = acc * inv
					}
				}
			}
		case "maxpool_bwd":
			x, dy, dx := b[0][pl*h*w:], b[1][pl*oh*ow:], b[2][pl*h*w:pl*h*w+h*w]
			clear(dx)
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					h0, h1, w0, w1 := window(oy, ox)
					m, at := float32(math.Inf(-1)), h0*w+w0
					for a := h0; a < h1; a++ {
						for c := w0; c < w1; c++ {
							if x[a*w+c] > m {
								m, at = x[a*w+c], a*w+c
							}
						}
					}
					dx[at] += dy[oy*ow+ox]
				}
			}
		case "avgpool_bwd":
			dy, dx := b[0][pl*oh*ow:], b[1][pl*h*w:pl*h*w+h*w]
			clear(dx)
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					h0, h1, w0, w1 := window(oy, ox)
					val := dy[oy*ow+ox] * inv
					for a := h0; a < h1; a++ {
						for c := w0; c < w1; c++ {
							dx[a*w+c] += val
						}
					}
				}
			}
		}
	}
}

// execMore runs the kernels of the random ops (random.go) and of layer
// norm (layernorm.go). The explicit float64 conversions round every
// product before it is added, so that Go never fuses them into an FMA
// (ops.cu is compiled with -fmad=false): reference and device agree bit
// for bit on these kernels.
func (r *Ref) execMore(in Instr, v []int, f []float64, b [][]float32) error {
	switch in.Kernel {
	case "rng_advance":
		for i := 0; i < v[0]; i++ {
			putU64(b[0], i, getU64(b[0], i)+1)
		}
	case "dropout_apply":
		n, thr := v[0], uint32(v[4])
		base := rng.Base(unwords(v[1], v[2]), getU64(b[1], v[3]))
		x, y, scale := b[0], b[2], float32(f[0])
		for i := 0; i < n; i++ {
			if rng.DropKeeps(base, i, thr) {
				y[i] = x[i] * scale
			} else {
				y[i] = 0
			}
		}
	case "stochdepth_apply":
		base := rng.Base(unwords(v[1], v[2]), getU64(b[1], v[3]))
		x, y := b[0][:v[0]], b[2][:v[0]]
		if rng.Survives(base, unwords(v[4], v[5])) {
			copy(y, x)
		} else {
			clear(y)
		}
	case "ln_fwd":
		n, d := v[0], v[1]
		eps := math.Float64frombits(unwords(v[2], v[3]))
		x, gamma, beta, saved, y := b[0], b[1], b[2], b[3], b[4]
		for row := 0; row < n; row++ {
			xs, ys := x[row*d:(row+1)*d], y[row*d:(row+1)*d]
			k := xs[0]
			s1, s2 := treeSum2(d, func(i int) (float64, float64) {
				e := float64(xs[i] - k)
				return e, float64(e * e)
			})
			dm := s1 / float64(d)
			vr := float64(s2/float64(d)) - float64(dm*dm)
			if vr < 0 {
				vr = 0
			}
			mean := float64(k) + dm
			is := 1 / math.Sqrt(vr+eps)
			putF64(saved, row, mean)
			putF64(saved, n+row, is)
			for i, xv := range xs {
				ys[i] = float32(float64(float64(float64(xv)-mean)*is*float64(gamma[i])) + float64(beta[i]))
			}
		}
	case "ln_input_grad":
		n, d := v[0], v[1]
		x, gamma, dy, saved, dx := b[0], b[1], b[2], b[3], b[4]
		for row := 0; row < n; row++ {
			o := row * d
			mean, is := getF64(saved, row), getF64(saved, n+row)
			s1, s2 := treeSum2(d, func(i int) (float64, float64) {
				g := float64(dy[o+i]) * float64(gamma[i])
				return g, float64(g * (float64(x[o+i]) - mean))
			})
			c0 := -is * s1 / float64(d)
			bb := -is * is * is * s2 / float64(d)
			for i := 0; i < d; i++ {
				t1 := float64(float64(is*float64(dy[o+i])) * float64(gamma[i]))
				t2 := float64(bb * (float64(x[o+i]) - mean))
				dx[o+i] = float32(t1 + t2 + c0)
			}
		}
	case "ln_param_grad":
		n, d := v[0], v[1]
		x, dy, saved, red := b[0], b[1], b[2], b[3]
		for j := 0; j < d; j++ {
			var sg, sb float64
			for row := 0; row < n; row++ {
				g := float64(dy[row*d+j])
				sg += float64(float64(g*(float64(x[row*d+j])-getF64(saved, row))) * getF64(saved, n+row))
				sb += g
			}
			red[j], red[d+j] = float32(sg), float32(sb)
		}
	default:
		return fmt.Errorf("ref: kernel %q not implemented", in.Kernel)
	}
	return nil
}

// treeSum2 is the block reduction of ops.cu's row kernels (tree_sum2): thread
// t of the BlockSize threads sums terms t, t+BlockSize, ... in order, then the
// partial sums are added pairwise, (t, t+s) for s = BlockSize/2, ..., 1.
// Mirroring the order makes the reference bit-identical to the device.
func treeSum2(n int, term func(i int) (float64, float64)) (float64, float64) {
	var p, q [BlockSize]float64
	for i := 0; i < n; i++ {
		a, b := term(i)
		p[i%BlockSize] += a
		q[i%BlockSize] += b
	}
	for s := BlockSize / 2; s > 0; s >>= 1 {
		for t := 0; t < s; t++ {
			p[t] += p[t+s]
			q[t] += q[t+s]
		}
	}
	return p[0], q[0]
}
