package ops

// convGeom is the geometry of one convolution: input (N,C,H,W), filters
// (F, C/G, KH, KW), strides, paddings, groups and output (N,F,OH,OW).
type convGeom struct {
	N, C, H, W     int
	F, KH, KW      int
	SH, SW, PH, PW int
	G              int
	OH, OW         int
}

func (g *convGeom) cg() int { return g.C / g.G }            // input channels per group
func (g *convGeom) fg() int { return g.F / g.G }            // filters per group
func (g *convGeom) kg() int { return g.cg() * g.KH * g.KW } // rows of one group's columns
func (g *convGeom) p() int  { return g.OH * g.OW }          // output pixels per image
func (g *convGeom) hw() int { return g.H * g.W }            // input pixels per image
func (g *convGeom) macs() float64 { // multiply-adds of one pass
	return float64(g.N) * float64(g.F) * float64(g.p()) * float64(g.kg())
}

// pointwise reports a 1x1, stride-1, unpadded convolution: its columns are
// the input itself, so no im2col is needed.
func (g *convGeom) pointwise() bool {
	return g.KH == 1 && g.KW == 1 && g.SH == 1 && g.SW == 1 && g.PH == 0 && g.PW == 0
}

// How im2col and col2im walk the input.
const (
	// im2colGeneral: one short copy (or strided gather) per output row.
	im2colGeneral = iota
	// im2colSame: stride 1 and output rows as long as input rows (the "same"
	// convolutions of ResNets): the row (c,kh,kw) of the columns is input
	// plane c shifted by (kh-PH, kw-PW), one bulk copy plus zeroed borders.
	im2colSame
	// im2colPhase: stride 2, even input sizes, output rows half as long as
	// input rows: the input is first split into its four stride phases
	// (even/odd rows x even/odd columns); each row of the columns is then
	// one phase plane shifted, as in im2colSame.
	im2colPhase
)

func (g *convGeom) im2colMode() int {
	switch {
	case g.SH == 1 && g.SW == 1 && g.OW == g.W:
		return im2colSame
	case g.SH == 2 && g.SW == 2 && g.H%2 == 0 && g.W%2 == 0 && g.OW == g.W/2:
		return im2colPhase
	}
	return im2colGeneral
}

// im2colScratch is the scratch im2col and col2im need for one channel group.
func (g *convGeom) im2colScratch() int {
	if g.im2colMode() == im2colPhase {
		return g.cg() * g.hw()
	}
	return 0
}

// im2colRange is the range [lo, hi) of output positions o whose input
// position o*s - pad + k lies inside [0, n), o < out.
func im2colRange(k, s, pad, n, out int) (lo, hi int) {
	if a := pad - k; a > 0 {
		lo = (a + s - 1) / s
	}
	a := n - 1 + pad - k
	if a < 0 {
		return 0, 0
	}
	hi = min(out, a/s+1)
	if lo > hi {
		lo = hi
	}
	return lo, hi
}

// im2col writes the patches of one image's channel group x (cg x H x W) as
// a (cg*KH*KW) x OH*OW matrix into col, whose rows are ld apart (ld >= OH*OW,
// so that several images can sit side by side). Padding reads as zero.
// scratch holds at least g.im2colScratch() elements.
func im2col[T Float](col []T, ld int, x []T, cg int, g *convGeom, scratch []T) {
	switch g.im2colMode() {
	case im2colSame:
		for c := 0; c < cg; c++ {
			xc := x[c*g.H*g.W:][:g.H*g.W]
			for kh := 0; kh < g.KH; kh++ {
				for kw := 0; kw < g.KW; kw++ {
					im2colShiftCopy(col[((c*g.KH+kh)*g.KW+kw)*ld:], xc, g.H, g.W, g.OH, kh-g.PH, kw-g.PW)
				}
			}
		}
		return
	case im2colPhase:
		hp, wp := g.H/2, g.W/2
		im2colSplitPhases(scratch, x, cg, g.H, g.W)
		for c := 0; c < cg; c++ {
			for kh := 0; kh < g.KH; kh++ {
				a, dr := (kh-g.PH)&1, (kh-g.PH)>>1
				for kw := 0; kw < g.KW; kw++ {
					b, dc := (kw-g.PW)&1, (kw-g.PW)>>1
					plane := scratch[((a*2+b)*cg+c)*hp*wp:][:hp*wp]
					im2colShiftCopy(col[((c*g.KH+kh)*g.KW+kw)*ld:], plane, hp, wp, g.OH, dr, dc)
				}
			}
		}
		return
	}
	H, W, OH, OW := g.H, g.W, g.OH, g.OW
	for c := 0; c < cg; c++ {
		xc := x[c*H*W : (c+1)*H*W]
		for kh := 0; kh < g.KH; kh++ {
			ohLo, ohHi := im2colRange(kh, g.SH, g.PH, H, OH)
			for kw := 0; kw < g.KW; kw++ {
				row := col[((c*g.KH+kh)*g.KW+kw)*ld:][:OH*OW]
				lo, hi := im2colRange(kw, g.SW, g.PW, W, OW)
				off, sw := kw-g.PW, g.SW
				rLo, rHi := ohLo, ohHi
				if lo == hi {
					rLo, rHi = 0, 0
				}
				clear(row[:rLo*OW])
				clear(row[rHi*OW:])
				for oh := rLo; oh < rHi; oh++ {
					dst := row[oh*OW : oh*OW+OW]
					ih := oh*g.SH - g.PH + kh
					for i := 0; i < lo; i++ {
						dst[i] = 0
					}
					for i := hi; i < OW; i++ {
						dst[i] = 0
					}
					if sw == 1 {
						copy(dst[lo:hi], xc[ih*W+lo+off:ih*W+hi+off])
						continue
					}
					src := xc[ih*W+lo*sw+off : ih*W+(hi-1)*sw+off+1]
					d := dst[lo:hi]
					for i := range d {
						d[i] = src[i*sw]
					}
				}
			}
		}
	}
}

// im2colShiftCopy writes the oh x pw matrix dst[r][q] = plane[r+dr][q+dc], zero
// where that falls outside the ph x pw plane: in flat index one bulk copy
// from plane shifted by dr*pw+dc, then the borders zeroed.
func im2colShiftCopy[T Float](dst, plane []T, ph, pw, oh, dr, dc int) {
	dst = dst[:oh*pw]
	rLo, rHi := max(0, -dr), min(oh, ph-dr)
	if rLo >= rHi || dc >= pw || -dc >= pw {
		clear(dst)
		return
	}
	lo, hi := rLo*pw, rHi*pw
	clear(dst[:lo])
	clear(dst[hi:])
	cl, ch := lo, hi
	if dc < 0 {
		cl -= dc
	} else {
		ch -= dc
	}
	s := dr*pw + dc
	copy(dst[cl:ch], plane[cl+s:ch+s])
	// the columns whose source wrapped into a neighbouring row (element
	// stores: these runs are short, usually one)
	zeroWrapped(dst, lo, hi, pw, dc)
}

// zeroWrapped zeroes, in rows [lo, hi) of width pw, the columns a shift by
// dc columns would take from a neighbouring row.
func zeroWrapped[T Float](buf []T, lo, hi, pw, dc int) {
	switch {
	case dc < 0:
		for r := lo; r < hi; r += pw {
			clear(buf[r : r-dc])
		}
	case dc > 0:
		for r := lo + pw - dc; r < hi; r += pw {
			clear(buf[r : r+dc])
		}
	}
}

// im2colShiftAdd is the adjoint of im2colShiftCopy: plane[r+dr][q+dc] += src[r][q] where
// inside the plane. It zeroes src's entries that would wrap, then adds in
// one pass.
func im2colShiftAdd[T Float](plane, src []T, ph, pw, oh, dr, dc int) {
	rLo, rHi := max(0, -dr), min(oh, ph-dr)
	if rLo >= rHi || dc >= pw || -dc >= pw {
		return
	}
	lo, hi := rLo*pw, rHi*pw
	zeroWrapped(src, lo, hi, pw, dc)
	cl, ch := lo, hi
	if dc < 0 {
		cl -= dc
	} else {
		ch -= dc
	}
	s := dr*pw + dc
	convAddTo(plane[cl+s:ch+s], src[cl:ch])
}

// convAddTo adds src to dst element-wise (len(dst) >= len(src)).
func convAddTo[T Float](dst, src []T) {
	dst = dst[:len(src)]
	i := 0
	for ; i+4 <= len(src); i += 4 {
		d, s := dst[i:i+4:i+4], src[i:i+4:i+4]
		d[0] += s[0]
		d[1] += s[1]
		d[2] += s[2]
		d[3] += s[3]
	}
	for ; i < len(src); i++ {
		dst[i] += src[i]
	}
}

// im2colSplitPhases writes the four stride-2 phases of the cg planes h x w of x
// into dst: phase (a,b) of channel c, dst[((a*2+b)*cg+c)*(h/2)*(w/2)+i*(w/2)+j]
// = x[c][2i+a][2j+b]. h and w are even.
func im2colSplitPhases[T Float](dst, x []T, cg, h, w int) {
	hp, wp := h/2, w/2
	pl := hp * wp
	for c := 0; c < cg; c++ {
		for i := 0; i < hp; i++ {
			for a := 0; a < 2; a++ {
				src := x[(c*h+2*i+a)*w:][:w]
				e := dst[((a*2+0)*cg+c)*pl+i*wp:][:wp]
				o := dst[((a*2+1)*cg+c)*pl+i*wp:][:wp]
				for j := range e {
					e[j] = src[2*j]
					o[j] = src[2*j+1]
				}
			}
		}
	}
}

// im2colMergePhases is the inverse of im2colSplitPhases: x[c][2i+a][2j+b] = phase (a,b).
func im2colMergePhases[T Float](x, src []T, cg, h, w int) {
	hp, wp := h/2, w/2
	pl := hp * wp
	for c := 0; c < cg; c++ {
		for i := 0; i < hp; i++ {
			for a := 0; a < 2; a++ {
				dst := x[(c*h+2*i+a)*w:][:w]
				e := src[((a*2+0)*cg+c)*pl+i*wp:][:wp]
				o := src[((a*2+1)*cg+c)*pl+i*wp:][:wp]
				for j := range e {
					dst[2*j] = e[j]
					dst[2*j+1] = o[j]
				}
			}
		}
	}
}

// col2im is the adjoint of im2col: it sets the image channel group dx
// (cg x H x W) to the sum of the columns col (rows ld apart) added back to
// the positions they were copied from; entries from the padding are dropped.
// It may overwrite col. scratch holds at least g.im2colScratch() elements.
func col2im[T Float](dx []T, col []T, ld int, cg int, g *convGeom, scratch []T) {
	dx = dx[:cg*g.H*g.W]
	switch g.im2colMode() {
	case im2colSame:
		clear(dx)
		for c := 0; c < cg; c++ {
			xc := dx[c*g.H*g.W:][:g.H*g.W]
			for kh := 0; kh < g.KH; kh++ {
				for kw := 0; kw < g.KW; kw++ {
					im2colShiftAdd(xc, col[((c*g.KH+kh)*g.KW+kw)*ld:], g.H, g.W, g.OH, kh-g.PH, kw-g.PW)
				}
			}
		}
		return
	case im2colPhase:
		hp, wp := g.H/2, g.W/2
		ph := scratch[:cg*g.H*g.W]
		clear(ph)
		for c := 0; c < cg; c++ {
			for kh := 0; kh < g.KH; kh++ {
				a, dr := (kh-g.PH)&1, (kh-g.PH)>>1
				for kw := 0; kw < g.KW; kw++ {
					b, dc := (kw-g.PW)&1, (kw-g.PW)>>1
					plane := ph[((a*2+b)*cg+c)*hp*wp:][:hp*wp]
					im2colShiftAdd(plane, col[((c*g.KH+kh)*g.KW+kw)*ld:], hp, wp, g.OH, dr, dc)
				}
			}
		}
		im2colMergePhases(dx, ph, cg, g.H, g.W)
		return
	}
	clear(dx)
	H, W, OH, OW := g.H, g.W, g.OH, g.OW
	for c := 0; c < cg; c++ {
		xc := dx[c*H*W : (c+1)*H*W]
		for kh := 0; kh < g.KH; kh++ {
			for kw := 0; kw < g.KW; kw++ {
				row := col[((c*g.KH+kh)*g.KW+kw)*ld:]
				lo, hi := im2colRange(kw, g.SW, g.PW, W, OW)
				if lo == hi {
					continue
				}
				off := kw - g.PW
				for oh := 0; oh < OH; oh++ {
					ih := oh*g.SH - g.PH + kh
					if ih < 0 || ih >= H {
						continue
					}
					src := row[oh*OW+lo : oh*OW+hi]
					dst := xc[ih*W : ih*W+W]
					if g.SW == 1 {
						convAddTo(dst[lo+off:hi+off], src)
					} else {
						for i, v := range src {
							dst[(lo+i)*g.SW+off] += v
						}
					}
				}
			}
		}
	}
}
