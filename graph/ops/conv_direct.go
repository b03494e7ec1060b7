package ops

// The direct convolution kernels: float32 convolutions computed straight
// from the input planes, without im2col and without a GEMM packing the
// columns again (conv_direct_avx512.c, AVX-512, through cgo).
//
// An output plane is handled as a flat run of P = OH*OW pixels in vectors of
// 16. For "same" stride-1 convolutions (output rows as long as input rows)
// the 16 inputs a tap (c, kh, kw) needs for a vector are 16 consecutive
// elements of input plane c, shifted by (kh-PH)*W + (kw-PW); for stride-2
// convolutions of even inputs the same holds for the input's stride phases
// (im2colSplitPhases). Lanes whose source falls into the padding are masked
// to zero: one 16-bit mask per (vector, tap), computed once per geometry.
// These are exactly the rows im2col would have copied, so the result is the
// im2col+GEMM one up to the order of the float32 sums.
//
// Forward: register tiles of 8 filters x 3 vectors (24 accumulators), a
// loop over channels and taps; the epilogue (per-filter scale and shift,
// residual, ReLU) runs on the registers before the single store, which is
// what inference fusion (fused.go) builds on. Filter gradient: tiles of 3
// filters x 9 taps accumulate over the pixels of several images in 16
// lanes, summed across the lanes per call. The input gradient of stride-1
// convolutions is a forward convolution (convTransposedGeometry), so it
// takes the forward kernel. Other convolutions, float64 and CPUs without
// AVX-512 keep im2col+GEMM.

// convFwdFB and convWGradFB are the filter blocks of the C kernels.
const (
	convFwdFB   = 8
	convWGradFB = 3
)

// convDirect is the direct kernels' plan for one geometry: tap offsets and
// masks, the packed filters of the forward kernel.
type convDirect struct {
	g       convGeom
	ready   bool
	ok      bool
	phase   bool
	cstride int
	kk      int
	nvec    int
	tapoff  []int64
	mask    []uint16
	wp      []float32 // forward filters packed per group, [G][ceil(Fg/8)][Cg][KK][8]
	wino    convWinograd
}

// prepare makes the plan for g, or reuses it; it reports whether the direct
// kernels compute g.
func (d *convDirect) prepare(g *convGeom, k *Kernels) bool {
	if !k.direct() {
		return false
	}
	if d.ready && d.g == *g {
		return d.ok
	}
	d.g, d.ready, d.ok = *g, true, false
	mode := g.im2colMode()
	if g.pointwise() || (mode != im2colSame && mode != im2colPhase) {
		return false
	}
	d.ok, d.phase = true, mode == im2colPhase
	ph, pw := g.H, g.W // the planes taps read: the input's, or its phases'
	if d.phase {
		ph, pw = g.H/2, g.W/2
	}
	d.cstride, d.kk = ph*pw, g.KH*g.KW
	P := g.p()
	d.nvec = (P + 15) / 16
	d.tapoff = normGrow(d.tapoff, d.kk)
	d.mask = normGrow(d.mask, d.nvec*d.kk)
	for kh := 0; kh < g.KH; kh++ {
		for kw := 0; kw < g.KW; kw++ {
			t := kh*g.KW + kw
			dr, dc, base := kh-g.PH, kw-g.PW, 0
			if d.phase {
				a, b := dr&1, dc&1
				dr, dc = dr>>1, dc>>1
				base = (a*2 + b) * g.cg() * d.cstride
			}
			d.tapoff[t] = int64(base + dr*pw + dc)
			directTapMasks(d.mask, d.kk, t, P, g.OW, ph, pw, dr, dc)
		}
	}
	return true
}

// packFilters writes w (F, Cg, KH, KW) into d.wp as the forward kernel reads
// it: per group, blocks of 8 filters side by side per (channel, tap), zero
// past the group's last filter.
func (d *convDirect) packFilters(w []float32) {
	g := &d.g
	Cg, Fg, KK := g.cg(), g.fg(), d.kk
	per := (Fg + convFwdFB - 1) / convFwdFB * Cg * KK * convFwdFB
	d.wp = normGrow(d.wp, g.G*per)
	for gi := 0; gi < g.G; gi++ {
		wg := w[gi*Fg*Cg*KK:]
		convPackFwd(d.wp[gi*per:(gi+1)*per], Fg, Cg, KK, func(f, c, t int) float32 { return wg[(f*Cg+c)*KK+t] })
	}
}

// convPackFwd writes the filters of one group as the forward kernel reads
// them, [ceil(nf/8)][nc][kk][8]: for each block of 8 output filters, per
// input channel and tap, the 8 filters' weights weight(f, c, t) side by
// side, zero past filter nf.
func convPackFwd(wp []float32, nf, nc, kk int, weight func(f, c, t int) float32) {
	for fb := 0; fb < (nf+convFwdFB-1)/convFwdFB; fb++ {
		for c := 0; c < nc; c++ {
			for t := 0; t < kk; t++ {
				dst := wp[((fb*nc+c)*kk+t)*convFwdFB:][:convFwdFB]
				for l := range dst {
					if f := fb*convFwdFB + l; f < nf {
						dst[l] = weight(f, c, t)
					} else {
						dst[l] = 0
					}
				}
			}
		}
	}
}

// wgradAccSize is the number of float32 partial sums the filter-gradient
// kernel needs per worker: one per filter-gradient element.
func (d *convDirect) wgradAccSize() int {
	g := &d.g
	return g.F * g.cg() * d.kk
}

// convEpilogue is what the forward kernels apply to each output element of
// filter f before storing it: v*scale[f] + shift[f] (scale nil: 1, shift
// nil: 0; a bias is a shift), plus the residual res (same layout as the
// output; nil: none), then max(v, 0) when relu; and, with stats, the sums
// of the batch statistics of each output plane, collected while it is in
// cache (convstats.go): by the Winograd kernel as soon as it stored the
// plane, on the other paths after each image's call.
type convEpilogue[T Float] struct {
	scale, shift []T
	res          []T
	relu         bool
	stats        *convStats
}

// convApplyEpilogue writes dst[f*p+i] = ep(src[f*lds+i]) for rows f0..f0+nf-1
// of filters and i < p; res (when ep has one) is already offset to the
// image, like dst. src may be dst (lds == p).
func convApplyEpilogue[T Float](dst, src []T, lds int, ep *convEpilogue[T], res []T, f0, nf, p int) {
	for f := 0; f < nf; f++ {
		s, d := src[f*lds:][:p], dst[f*p:][:p]
		sc, sh := T(1), T(0)
		if ep.scale != nil {
			sc = ep.scale[f0+f]
		}
		if ep.shift != nil {
			sh = ep.shift[f0+f]
		}
		switch {
		case ep.scale == nil && ep.res == nil:
			if ep.shift == nil {
				if &d[0] != &s[0] {
					copy(d, s)
				}
			} else {
				for i, v := range s {
					d[i] = v + sh
				}
			}
		case ep.res == nil:
			for i, v := range s {
				d[i] = v*sc + sh
			}
		default:
			r := res[f*p:][:p]
			for i, v := range s {
				d[i] = v*sc + sh + r[i]
			}
		}
		if ep.relu {
			reluRow(d)
		}
	}
}

// reluRow rectifies d in place (reluMask32/64: NaN -> 0).
func reluRow[T Float](d []T) {
	switch v := any(d).(type) {
	case []float32:
		reluMask32(v, v, v)
	case []float64:
		reluMask64(v, v, v)
	}
}
