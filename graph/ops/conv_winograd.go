package ops

// Winograd F(2x2, 3x3) for the 3x3 stride-1 "same" convolutions of the
// CIFAR networks (conv_winograd_avx512.c): 16 multiplies per 2x2 outputs
// and channel instead of 36. The forward kernels (the direct ones) run at
// the cores' FMA peak, so fewer multiplies is what is left to gain on these
// layers. Fused inference, the stride-1 input gradient (a forward
// convolution) and the filter gradient (the adjoint: G^T [sum over tiles of
// (A dy A^T) * (B^T x B)] G) take it, the training forward when
// Kernels.WinogradTrainForward says so; results differ from the direct sums by float32 rounding (their
// error against float64 is if anything smaller: the sums over channels are
// 9 times shorter).

// convWinograd is the Winograd kernel's plan for one geometry and its
// transformed filters.
type convWinograd struct {
	g     convGeom
	ready bool
	ok    bool
	minC  int // the Kernels.WinogradMinC ok was decided under
	nfb   int
	nvi   int       // vectors of 16 tiles per image
	u     []float32 // per group [16][nfb][Cg][8]
}

// convWinogradFits reports whether g is a geometry the kernel computes.
func convWinogradFits(g *convGeom, minC int) bool {
	return g.KH == 3 && g.KW == 3 && g.SH == 1 && g.SW == 1 && g.PH == 1 && g.PW == 1 &&
		(g.W == 8 || g.W == 16 || g.W == 32) && g.H%2 == 0 && g.H >= 2 && (g.H*g.W/4)%16 == 0 &&
		g.cg() >= minC
}

// prepare makes the plan for g or reuses it; it reports whether the kernel
// computes g.
func (w *convWinograd) prepare(g *convGeom, k *Kernels) bool {
	if !k.direct() || !k.Winograd {
		return false
	}
	if w.ready && w.g == *g && w.minC == k.WinogradMinC {
		return w.ok
	}
	w.g, w.ready, w.minC = *g, true, k.WinogradMinC
	w.ok = convWinogradFits(g, k.WinogradMinC)
	w.nfb = (g.fg() + convFwdFB - 1) / convFwdFB
	w.nvi = g.H * g.W / 64
	return w.ok
}

// images is how many images one call takes: as many as keep its scratch
// under k.WinogradScratchBytes, at most per (a worker's share).
func (w *convWinograd) images(per int, k *Kernels) int {
	perVec := 16 * (w.g.cg() + w.nfb*convFwdFB) * 16 * 4
	return max(1, min(per, k.WinogradScratchBytes/(perVec*w.nvi)))
}

// scratch is the per-worker scratch for nimg images: transformed inputs,
// then products.
func (w *convWinograd) scratch(nimg int) (vt, mt int) {
	nvec := nimg * w.nvi
	return 16 * w.g.cg() * nvec * 16, 16 * w.nfb * convFwdFB * nvec * 16
}

// transformFilters computes U = G g G^T for every filter and channel (in
// float64, rounded once), G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
// laid out per group as [16][nfb][Cg][8], zero past the group's filters.
func (w *convWinograd) transformFilters(wts []float32) {
	g := &w.g
	Cg, Fg := g.cg(), g.fg()
	per := 16 * w.nfb * Cg * convFwdFB
	w.u = normGrow(w.u, g.G*per)
	clear(w.u)
	for gi := 0; gi < g.G; gi++ {
		u := w.u[gi*per : (gi+1)*per]
		for f := 0; f < Fg; f++ {
			fb, f8 := f/convFwdFB, f%convFwdFB
			for c := 0; c < Cg; c++ {
				k := wts[((gi*Fg+f)*Cg+c)*9:][:9]
				var t [4][3]float64 // G g
				for col := 0; col < 3; col++ {
					a, b, d := float64(k[col]), float64(k[3+col]), float64(k[6+col])
					t[0][col], t[1][col], t[2][col], t[3][col] = a, (a+b+d)/2, (a-b+d)/2, d
				}
				for r := 0; r < 4; r++ { // (G g) G^T
					a, b, d := t[r][0], t[r][1], t[r][2]
					row := [4]float64{a, (a + b + d) / 2, (a - b + d) / 2, d}
					for s := 0; s < 4; s++ {
						u[((((r*4+s)*w.nfb)+fb)*Cg+c)*convFwdFB+f8] = float32(row[s])
					}
				}
			}
		}
	}
}

// wgradImages is how many images one filter-gradient call takes, at most
// per: as many as keep its scratch under k.WinogradWGradBytes, and enough
// for 64 vectors of tiles where this allows.
func (w *convWinograd) wgradImages(per int, k *Kernels) int {
	perVec := 16 * (w.g.cg() + w.g.fg()) * 16 * 4
	want := max(1, (64+w.nvi-1)/w.nvi)
	return max(1, min(per, want, k.WinogradWGradBytes/(perVec*w.nvi)))
}

// wgradScratch is the per-worker scratch of the filter gradient for nimg
// images: transformed inputs, then transformed output gradients.
func (w *convWinograd) wgradScratch(nimg int) (vt, dt int) {
	nvec := nimg * w.nvi
	return 16 * w.g.cg() * nvec * 16, 16 * w.g.fg() * nvec * 16
}

// wgradAccSize is the per-worker size of the transformed filter gradient z:
// per group [16][Fg][Cg].
func (w *convWinograd) wgradAccSize() int { return w.g.G * 16 * w.g.fg() * w.g.cg() }

// wgradFinish writes the filter gradient dw (F, Cg, 3, 3) = G^T Z G from
// the sum Z of the workers' z (acc, workers of per elements each).
func convWinogradWGradFinish[T Float](w *convWinograd, acc []T, per, workers int, dw []T) {
	g := &w.g
	Cg, Fg := g.cg(), g.fg()
	for gi := 0; gi < g.G; gi++ {
		for f := 0; f < Fg; f++ {
			for c := 0; c < Cg; c++ {
				var z [4][4]float64
				for e := 0; e < 16; e++ {
					o := ((gi*16+e)*Fg+f)*Cg + c
					var s float64
					for wk := 0; wk < workers; wk++ {
						s += float64(acc[wk*per+o])
					}
					z[e/4][e%4] = s
				}
				// G^T z G, G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1]
				var t [3][4]float64
				for s := 0; s < 4; s++ {
					t[0][s] = z[0][s] + (z[1][s]+z[2][s])/2
					t[1][s] = (z[1][s] - z[2][s]) / 2
					t[2][s] = (z[1][s]+z[2][s])/2 + z[3][s]
				}
				out := dw[((gi*Fg+f)*Cg+c)*9:][:9]
				for i := 0; i < 3; i++ {
					out[i*3+0] = T(t[i][0] + (t[i][1]+t[i][2])/2)
					out[i*3+1] = T((t[i][1] - t[i][2]) / 2)
					out[i*3+2] = T((t[i][1]+t[i][2])/2 + t[i][3])
				}
			}
		}
	}
}
