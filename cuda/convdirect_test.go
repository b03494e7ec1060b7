package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/erase"
)

// naiveConv64 is a stride-1 3x3 convolution of x (n, c, h, w) padded by
// (ph, pw) in float64, and the sum of |w·x| of each output (the scale of
// its rounding error).
func naiveConv64(x, w []float32, n, c, h, wd, f, ph, pw int) (y, mag []float64, oh, ow int) {
	oh, ow = h+2*ph-2, wd+2*pw-2
	y, mag = make([]float64, n*f*oh*ow), make([]float64, n*f*oh*ow)
	for b := 0; b < n; b++ {
		for o := 0; o < f; o++ {
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					var s, m float64
					for ch := 0; ch < c; ch++ {
						for k := 0; k < 9; k++ {
							iy, ix := oy-ph+k/3, ox-pw+k%3
							if iy < 0 || iy >= h || ix < 0 || ix >= wd {
								continue
							}
							p := float64(w[(o*c+ch)*9+k]) * float64(x[((b*c+ch)*h+iy)*wd+ix])
							s += p
							m += math.Abs(p)
						}
					}
					i := ((b*f+o)*oh+oy)*ow + ox
					y[i], mag[i] = s, m
				}
			}
		}
	}
	return y, mag, oh, ow
}

// naiveConvData64 is the data gradient of that convolution: dx (n, c, h,
// w) from dy (n, f, oh, ow), in float64, with the scale of each entry.
func naiveConvData64(dy, w []float32, n, c, h, wd, f, ph, pw int) (dx, mag []float64) {
	oh, ow := h+2*ph-2, wd+2*pw-2
	dx, mag = make([]float64, n*c*h*wd), make([]float64, n*c*h*wd)
	for b := 0; b < n; b++ {
		for o := 0; o < f; o++ {
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					g := float64(dy[((b*f+o)*oh+oy)*ow+ox])
					for ch := 0; ch < c; ch++ {
						for k := 0; k < 9; k++ {
							iy, ix := oy-ph+k/3, ox-pw+k%3
							if iy < 0 || iy >= h || ix < 0 || ix >= wd {
								continue
							}
							p := g * float64(w[(o*c+ch)*9+k])
							i := ((b*c+ch)*h+iy)*wd + ix
							dx[i] += p
							mag[i] += math.Abs(p)
						}
					}
				}
			}
		}
	}
	return dx, mag
}

// TestConvDirectRef: conv_direct's reference arithmetic against float64,
// forward and data gradient, over channel counts below, at and above a
// tile's and a staging chunk's, pads 0-2 and planes the tiles divide
// unevenly. The bound: an fmaf chain of K = 9c terms is within K·u·Σ|w·x|
// of the exact sum (u = 2^-24; the standard bound is γ_K = Ku/(1-Ku)),
// so each output must lie within 9c·2^-24·Σ|w·x| (plus a tiny absolute
// term for sums that cancel to 0).
func TestConvDirectRef(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct{ n, c, h, w, f, ph, pw int }{
		{2, 3, 8, 8, 5, 1, 1},
		{2, 16, 32, 32, 16, 1, 1},
		{1, 7, 10, 10, 9, 0, 0}, // 8x8 output
		{1, 5, 6, 6, 3, 2, 2},   // 8x8 output
		{1, 64, 8, 8, 70, 1, 1},
		{3, 4, 20, 16, 4, 1, 1}, // 20 rows: a partial last tile
	} {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			x := make([]float32, tc.n*tc.c*tc.h*tc.w)
			w := make([]float32, tc.f*tc.c*9)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			for i := range w {
				w[i] = float32(rng.NormFloat64())
			}
			want, mag, oh, ow := naiveConv64(x, w, tc.n, tc.c, tc.h, tc.w, tc.f, tc.ph, tc.pw)
			a := ConvDirectArgs{N: tc.n, C: tc.c, H: tc.h, W: tc.w, F: tc.f, PH: tc.ph, PW: tc.pw, OH: oh, OW: ow, TR: 1}
			y := make([]float32, len(want))
			refConvDirect(a, x, w, y)
			bound := float64(9*tc.c) * 0x1p-24
			check := func(what string, got []float32, want, mag []float64) {
				for i := range want {
					if d := math.Abs(float64(got[i]) - want[i]); d > bound*mag[i]+1e-30 {
						t.Fatalf("%s[%d] = %v, float64 %v: off by %.3g, bound %.3g", what, i, got[i], want[i], d, bound*mag[i])
					}
				}
			}
			check("y", y, want, mag)

			dy := make([]float32, len(want))
			for i := range dy {
				dy[i] = float32(rng.NormFloat64())
			}
			dwant, dmag := naiveConvData64(dy, w, tc.n, tc.c, tc.h, tc.w, tc.f, tc.ph, tc.pw)
			da := ConvDirectArgs{N: tc.n, C: tc.f, H: oh, W: ow, F: tc.c, PH: 2 - tc.ph, PW: 2 - tc.pw, OH: tc.h, OW: tc.w, TR: 1, Flip: 1}
			dx := make([]float32, len(dwant))
			refConvDirect(da, dy, w, dx)
			check("dx", dx, dwant, dmag)
		})
	}
}

// TestDirectConvTile: the tiles conv_direct takes, and the limits ops.cu
// assumes of them.
func TestDirectConvTile(t *testing.T) {
	for _, tc := range []struct{ oh, ow, tr int }{
		{32, 32, 8}, {16, 16, 16}, {8, 8, 8}, {64, 64, 4}, {20, 16, 16}, {32, 8, 32},
		{28, 28, 0}, // ow not a multiple of 4
		{56, 56, 0}, // 4 rows of 56: 224 pixels, not a power of two
		{4, 8, 0},   // 32 pixels: more channels per tile than the kernel stages
		{8, 128, 0}, // wider than 64
		{7, 8, 0},   // 56 pixels
	} {
		tr := directConvTile(tc.oh, tc.ow)
		if tr != tc.tr {
			t.Errorf("directConvTile(%d, %d) = %d, want %d", tc.oh, tc.ow, tr, tc.tr)
			continue
		}
		if tr == 0 {
			continue
		}
		a := ConvDirectArgs{OH: tc.oh, OW: tc.ow, TR: tr}
		if ft := a.tileChannels(); ft < 16 || ft > directMaxFT || (tr+2)*(tc.ow+2) > directPatch {
			t.Errorf("%dx%d: tile of %d rows, %d channels, patch %d", tc.oh, tc.ow, tr, ft, (tr+2)*(tc.ow+2))
		}
	}
}

// TestDirectConvStep: with DirectConv, every stride-1 3x3 convolution of
// ResNet-20 (forward and data gradient) runs as conv_direct and the others
// keep im2col + GEMM; the step passes the same acceptance test against
// the CPU and float64 as the GEMM step (checkStep), and the arena shrinks
// by the column buffers. A bf16 step ignores the choice.
func TestDirectConvStep(t *testing.T) {
	cfg := arch.Config{Arch: "resnet-20", Batch: 4}
	s := checkStep(t, cfg, false, erase.Identity, 1e-4, Lowering{Precision: FP32, DirectConv: true})
	direct, flipped, im2cols := 0, 0, 0
	for _, in := range s.Instrs {
		switch in.Kernel {
		case convDirect.name:
			direct++
			if a, _ := decodeArgs[ConvDirectArgs](in.Ints, in.Floats); a.Flip == 1 {
				flipped++
			}
		case im2col.name:
			im2cols++
		}
	}
	// ResNet-20: 19 3x3 convolutions, 2 of them stride 2; the first
	// layer's data gradient is not needed.
	if direct != 17+16 || flipped != 16 {
		t.Errorf("%d conv_direct launches (%d data gradients), want 33 (16)", direct, flipped)
	}
	// im2col stays for the 19 filter gradients and the 2 stride-2 forwards.
	if im2cols != 19+2 {
		t.Errorf("%d im2col launches, want 21", im2cols)
	}
	// Pre-activation, 1x1 projections, 128 channels at 8x8 (two channel
	// tiles of conv_direct).
	s = checkStep(t, arch.Config{Arch: "wrn-16-2", Batch: 2}, false, erase.Identity, 1e-4, Lowering{Precision: FP32, DirectConv: true})
	if indexOfKernel(s, convDirect.name) < 0 {
		t.Error("WRN-16-2: no conv_direct")
	}
	_, p, _, _ := build(t, "resnet-20", 128, false)
	var arena [2]int64
	for i, dc := range []bool{false, true} {
		st, _, err := LowerProgram(p, benchSGD, Lowering{Precision: FP32, DirectConv: dc})
		if err != nil {
			t.Fatal(err)
		}
		arena[i] = st.ArenaBytes
	}
	t.Logf("ResNet-20 batch 128 arena: %.1f MiB with GEMMs, %.1f MiB direct", float64(arena[0])/(1<<20), float64(arena[1])/(1<<20))
	if arena[1] > arena[0] {
		t.Errorf("the direct step's arena (%d bytes) is larger than the GEMM step's (%d)", arena[1], arena[0])
	}
	bf, err := Lower(p, benchSGD, BF16)
	if err != nil {
		t.Fatal(err)
	}
	bd, _, err := LowerProgram(p, benchSGD, Lowering{Precision: BF16, DirectConv: true})
	if err != nil {
		t.Fatal(err)
	}
	if indexOfKernel(bd, convDirect.name) >= 0 || len(bd.Instrs) != len(bf.Instrs) {
		t.Error("a bf16 step lowered with DirectConv differs from the bf16 step")
	}
}
