package ops

import (
	"sync"

	"github.com/eraserelu/eraserelu/graph/ops/cpu"
)

// The input gradient of a strided convolution by stride phases, on the
// direct forward kernel (float32, AVX-512).
//
// With strides (SH, SW), input row ih = SH*i + a (phase a < SH) receives
// only from the taps kh with kh ≡ a + PH (mod SH), and from output row
// oh = i + dr, dr = (a + PH - kh)/SH; likewise columns. So phase (a, b) of
// the input gradient, dx[c][SH*i+a][SW*j+b], is a stride-1 correlation of
// dy (F planes of OH x OW) with a sub-filter of those taps:
//
//	dx_ab[c][i][j] = sum_f sum_{taps (kh,kw) of (a,b)} w[f][c][kh][kw] * dy[f][i+dr][j+dc]
//
// (dy zero outside its plane). Computed on a grid of ceil(H/SH) rows of
// OW pixels, the taps are flat shifts dr*OW + dc of dy's planes, which is
// what the direct forward kernel computes (conv_direct.go): the phases'
// taps get offsets and lane masks, the sub-filters are packed as its
// filters (dx's channels in the role of filters, dy's in that of
// channels), and each image's phases, computed into scratch, are
// interleaved into dx. Each phase reads only its own taps: the
// multiply-adds are the forward convolution's, against col2im's GEMM over
// all taps followed by a scatter-add of the columns.
//
// It applies when every phase plane is at most OW wide (ceil(W/SW) <= OW:
// "same"-padded strided convolutions such as 3x3 pad 1, 1x1 pad 0, 7x7 pad
// 3 at stride 2, odd sizes included); other geometries, float64, the
// purego build and CPUs without AVX-512 keep GEMM + col2im.

// convPhase is one stride phase's sub-filter: its taps' offsets into dy's
// planes and lane masks, and the packed filters of each group.
type convPhase struct {
	a, b   int // the phase: input rows a (mod SH), columns b (mod SW)
	kh, kw []int
	tapoff []int64
	mask   []uint16
	wp     []float32 // per group [ceil(Cg/8)][Fg][kk][8]
}

// convPhaseGrad is the plan of the phase-decomposed input gradient for one
// geometry.
type convPhaseGrad struct {
	g      convGeom
	ready  bool
	ok     bool
	rows   int // rows of the grid each phase is computed on: ceil(H/SH)
	phases []convPhase
}

// convPhaseFits reports whether the phase decomposition computes the input
// gradient of g: strided (stride 1 is a forward convolution,
// convTransposedGeometry), every phase plane at most OW wide.
func convPhaseFits(g *convGeom) bool {
	return (g.SH > 1 || g.SW > 1) && (g.W+g.SW-1)/g.SW <= g.OW && !g.pointwise()
}

// prepare makes the plan for g, or reuses it; it reports whether the
// phase kernels compute g's input gradient under k.
func (d *convPhaseGrad) prepare(g *convGeom, k *Kernels) bool {
	if !k.direct() || !k.DataGradViaForward {
		return false
	}
	if d.ready && d.g == *g {
		return d.ok
	}
	d.g, d.ready, d.ok = *g, true, false
	if !convPhaseFits(g) {
		return false
	}
	d.ok = true
	d.rows = (g.H + g.SH - 1) / g.SH
	d.phases = normGrow(d.phases, g.SH*g.SW)
	P := d.rows * g.OW
	nvec := (P + 15) / 16
	for a := 0; a < g.SH; a++ {
		for b := 0; b < g.SW; b++ {
			ph := &d.phases[a*g.SW+b]
			ph.a, ph.b, ph.kh, ph.kw = a, b, ph.kh[:0], ph.kw[:0]
			for kh := 0; kh < g.KH; kh++ {
				if (a+g.PH-kh)%g.SH != 0 {
					continue
				}
				for kw := 0; kw < g.KW; kw++ {
					if (b+g.PW-kw)%g.SW == 0 {
						ph.kh, ph.kw = append(ph.kh, kh), append(ph.kw, kw)
					}
				}
			}
			kk := len(ph.kh)
			ph.tapoff = normGrow(ph.tapoff, kk)
			ph.mask = normGrow(ph.mask, nvec*kk)
			for t := range kk {
				dr, dc := (a+g.PH-ph.kh[t])/g.SH, (b+g.PW-ph.kw[t])/g.SW
				ph.tapoff[t] = int64(dr*g.OW + dc)
				directTapMasks(ph.mask, kk, t, P, g.OW, g.OH, g.OW, dr, dc)
			}
		}
	}
	return true
}

// directTapMasks writes the lane masks of tap t (of kk) into mask
// (mask[j*kk+t] for the 16-pixel vector j): a run of P output pixels in
// rows ow wide reads, for pixel (r, q), input (r+dr, q+dc) of a ph x pw
// plane; lanes reading outside it, or past P, are off.
func directTapMasks(mask []uint16, kk, t, P, ow, ph, pw, dr, dc int) {
	for j := 0; j < (P+15)/16; j++ {
		var m uint16
		for l := 0; l < 16; l++ {
			p := 16*j + l
			if p >= P {
				break
			}
			r, q := p/ow+dr, p%ow+dc
			if r >= 0 && r < ph && q >= 0 && q < pw {
				m |= 1 << l
			}
		}
		mask[j*kk+t] = m
	}
}

// packFilters writes each phase's sub-filters of w (F, Cg, KH, KW) as the
// forward kernel reads its filters (convPackFwd), with the group's input
// channels in the role of its filters and the group's filters in that of
// its channels.
func (d *convPhaseGrad) packFilters(w []float32) {
	g := &d.g
	Cg, Fg, KK := g.cg(), g.fg(), g.KH*g.KW
	for i := range d.phases {
		ph := &d.phases[i]
		kk := len(ph.kh)
		per := (Cg + convFwdFB - 1) / convFwdFB * Fg * kk * convFwdFB
		ph.wp = normGrow(ph.wp, g.G*per)
		for gi := 0; gi < g.G; gi++ {
			wg := w[gi*Fg*Cg*KK:]
			convPackFwd(ph.wp[gi*per:(gi+1)*per], Cg, Fg, kk, func(c, f, t int) float32 {
				return wg[(f*Cg+c)*KK+ph.kh[t]*g.KW+ph.kw[t]]
			})
		}
	}
}

// scratch is the number of float32 one image's group of phases needs.
func (d *convPhaseGrad) scratch() int { return len(d.phases) * d.g.cg() * d.rows * d.g.OW }

// convBwdPhase is the phase-decomposed input gradient's arguments, a
// convTask over images.
type convBwdPhase struct {
	d      *convPhaseGrad
	dy, dx []float32
	ws     []float32
	per    int
}

// convBackwardDataPhases computes dx from w and dy for d's geometry.
func convBackwardDataPhases(t *convBwdPhase, d *convPhaseGrad, wg *sync.WaitGroup, e *Env, w, dy, dx []float32) {
	g := &d.g
	d.packFilters(w)
	workers := cpu.Workers(g.N, g.macs(), e.k.MinParallelWork)
	per := d.scratch()
	ws := scratchLock[float32](e, workers*per)
	defer e.scratchUnlock()
	*t = convBwdPhase{d: d, dy: dy, dx: dx, ws: ws, per: per}
	cpu.Parallel(t, wg, workers, g.N, false)
	*t = convBwdPhase{}
}

func (t *convBwdPhase) Run(wk, lo, hi int) {
	d := t.d
	g := &d.g
	scr := t.ws[wk*t.per : (wk+1)*t.per]
	Cg, Fg, P, HW := g.cg(), g.fg(), d.rows*g.OW, g.hw()
	xImg, yImg := g.C*HW, g.F*g.p()
	for n := lo; n < hi; n++ {
		for gi := 0; gi < g.G; gi++ {
			dyg := t.dy[n*yImg+gi*Fg*g.p():][:Fg*g.p()]
			for i := range d.phases {
				ph := &d.phases[i]
				out := scr[i*Cg*P : (i+1)*Cg*P]
				kk := len(ph.kh)
				if kk == 0 {
					clear(out)
					continue
				}
				per := len(ph.wp) / g.G
				convDirectRawFwd32(dyg, int64(g.p()), Fg, kk, ph.tapoff, ph.mask, ph.wp[gi*per:(gi+1)*per], Cg,
					out, P, nil, nil, nil, false)
			}
			convMergePhases(t.dx[n*xImg+gi*Cg*HW:][:Cg*HW], scr, d)
		}
	}
}

// convMergePhases interleaves the phases of one image's channel group,
// computed on grids of d.rows x OW, into dx (Cg planes of H x W):
// dx[c][SH*i+a][SW*j+b] = phase (a,b)[c][i*OW+j]; stride 2 in C with
// vector permutes.
func convMergePhases(dx, scr []float32, d *convPhaseGrad) {
	g := &d.g
	Cg, P := g.cg(), d.rows*g.OW
	if g.SH == 2 && g.SW == 2 {
		convMergePhases2(dx, scr, Cg, g.H, g.W, g.OW)
		return
	}
	for i := range d.phases {
		ph := &d.phases[i]
		src := scr[i*Cg*P : (i+1)*Cg*P]
		cols := (g.W - ph.b + g.SW - 1) / g.SW
		for c := 0; c < Cg; c++ {
			for r, ih := 0, ph.a; ih < g.H; r, ih = r+1, ih+g.SH {
				s := src[c*P+r*g.OW:][:cols]
				row := dx[(c*g.H+ih)*g.W:][:g.W]
				for j, v := range s {
					row[ph.b+j*g.SW] = v
				}
			}
		}
	}
}
