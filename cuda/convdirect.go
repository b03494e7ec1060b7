package cuda

import (
	"math"

	"gorgonia.org/gorgonia"
)

// Direct 3x3 convolutions (Lowering.DirectConv).
//
// im2col writes nine copies of a convolution's input before its GEMM reads
// them, and the data gradient's GEMM writes nine partial images that
// col2im adds back: on the thin CIFAR ResNets these column buffers are
// most of a stride-1 3x3 convolution's memory traffic (im2col and col2im
// were 28% of a ResNet-20 step on the H200, docs/PERFORMANCE.md). A direct
// kernel reads the input once into shared memory per tile and writes the
// output once. The data gradient of a stride-1 convolution is itself a
// stride-1 3x3 convolution (of dy, with the filter transposed in its
// channels and turned by 180°), so one kernel serves both; the filter
// gradient keeps im2col + GEMM (a reduction over the whole batch, which a
// GEMM does well). The choice is per layer (directConvTile): tiles the
// kernel handles, in fp32 steps only (a bf16 step's GEMMs are on tensor
// cores).

// ConvDirectArgs: a stride-1, ungrouped 3x3 convolution of x (N, C, H, W)
// padded by (PH, PW) into y (N, F, OH, OW), in tiles of TR output rows;
// Flip 1 reads the filter as the data gradient does (see ops.cu).
type ConvDirectArgs struct{ N, C, H, W, F, PH, PW, OH, OW, TR, Flip int }

func (a *ConvDirectArgs) params() ([]*int, []*float64) {
	return []*int{&a.N, &a.C, &a.H, &a.W, &a.F, &a.PH, &a.PW, &a.OH, &a.OW, &a.TR, &a.Flip}, nil
}

// Limits of ops.cu's conv_direct (DC, DPATCH, DFT there).
const (
	directPatch = 400 // floats of one channel's input patch
	directMaxFT = 64  // output channels of one tile
)

// tileChannels is the number of output channels one block computes: each
// of its BlockSize threads owns 4 pixels and 4 channels.
func (a ConvDirectArgs) tileChannels() int { return BlockSize / (a.TR * a.OW / 4) * 4 }

// directConvTile returns the tile rows for an output of oh x ow, or 0 when
// conv_direct cannot take it: ow a multiple of 4 from 8 to 64, and a tile
// of tr rows x ow columns holding 64 to 256 pixels, a power of two (so that
// the threads split evenly into pixel groups and channel groups), whose
// padded patch fits the shared memory.
func directConvTile(oh, ow int) int {
	if ow%4 != 0 || ow < 8 || ow > 64 {
		return 0
	}
	tr := min(oh, BlockSize/ow)
	px := tr * ow
	if px < 64 || px > BlockSize || px&(px-1) != 0 || (tr+2)*(ow+2) > directPatch {
		return 0
	}
	return tr
}

var convDirect = defKernel("conv_direct", 3, func(a ConvDirectArgs) Dim {
	tiles := (a.OH + a.TR - 1) / a.TR
	ft := a.tileChannels()
	return Dim{Grid: a.N * tiles * ((a.F + ft - 1) / ft), Block: BlockSize}
}, func(_ *Ref, _ Instr, a ConvDirectArgs, b [][]float32) {
	refConvDirect(a, b[0], b[1], b[2])
})

// refConvDirect is conv_direct's arithmetic: each output the float32 fused
// multiply-add chain over (input channel, ky, kx) in that order, as the
// kernel's fmaf. (math.FMA rounds the exact a*b+c to float64 before the
// conversion rounds it to float32; the two roundings differ from fmaf's
// one in rare halfway cases, within the device check's tolerance.)
func refConvDirect(a ConvDirectArgs, x, w, y []float32) {
	weight := func(f, c, k int) float32 {
		if a.Flip != 0 {
			return w[(c*a.F+f)*9+8-k]
		}
		return w[(f*a.C+c)*9+k]
	}
	for n := 0; n < a.N; n++ {
		for f := 0; f < a.F; f++ {
			for oy := 0; oy < a.OH; oy++ {
				for ox := 0; ox < a.OW; ox++ {
					var acc float32
					for c := 0; c < a.C; c++ {
						for k := 0; k < 9; k++ {
							iy, ix := oy-a.PH+k/3, ox-a.PW+k%3
							if iy < 0 || iy >= a.H || ix < 0 || ix >= a.W {
								continue
							}
							v := x[((n*a.C+c)*a.H+iy)*a.W+ix]
							acc = float32(math.FMA(float64(weight(f, c, k)), float64(v), float64(acc)))
						}
					}
					y[((n*a.F+f)*a.OH+oy)*a.OW+ox] = acc
				}
			}
		}
	}
}

// direct returns conv_direct's arguments for c's forward pass (flip
// false) or data gradient (flip true), and whether the step lowers it so.
func (l *lowerer) direct(c conv, flip bool) (ConvDirectArgs, bool) {
	if !l.s.DirectConv || l.s.Precision != FP32 || c.KH != 3 || c.KW != 3 || c.SH != 1 || c.SW != 1 || c.G != 1 || c.PH > 2 || c.PW > 2 {
		return ConvDirectArgs{}, false
	}
	a := ConvDirectArgs{N: c.N, C: c.C, H: c.H, W: c.W, F: c.F, PH: c.PH, PW: c.PW, OH: c.OH, OW: c.OW}
	if flip { // dx (N, C, H, W) from dy (N, F, OH, OW)
		a = ConvDirectArgs{N: c.N, C: c.F, H: c.OH, W: c.OW, F: c.C, PH: 2 - c.PH, PW: 2 - c.PW, OH: c.H, OW: c.W, Flip: 1}
	}
	a.TR = directConvTile(a.OH, a.OW)
	if a.TR == 0 || a.tileChannels() > directMaxFT {
		return ConvDirectArgs{}, false
	}
	return a, true
}

// emitDirect emits conv_direct reading in and the filter w into out.
func (l *lowerer) emitDirect(a ConvDirectArgs, in, w, out int, n *gorgonia.Node) {
	l.emit(convDirect.instr(a, []int{in, w, out}, []int{out}), n)
}
