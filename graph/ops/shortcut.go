package ops

import (
	"fmt"
	"github.com/eraserelu/eraserelu/graph/ops/cpu"
	"hash"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ZeroPadShortcutOp is the parameter-free shortcut of the CIFAR ResNets
// (He et al. 2016, option A): x (N,C,H,W) is subsampled in space,
// x[:, :, ::stride, ::stride], and zero channels are added to reach
// outChannels.
//
// Placement of the zero channels: (outChannels-C)/2 before the input
// channels and the rest after them, i.e. symmetric whenever the difference
// is even (always so in the CIFAR ResNets, where outChannels = 2C). This is
// the widely used convention of akamaster/pytorch_resnet_cifar10, whose
// LambdaLayer computes F.pad(x[:, :, ::2, ::2], (0,0,0,0, planes//4, planes//4)).
type ZeroPadShortcutOp struct {
	noCommon
	outC, stride int
	c, h, w      int // input channels and spatial size
	id           uint64
	outBuf
	shp [4]int
	k32 zpArgs[float32]
	k64 zpArgs[float64]
}

// ZeroPadShortcut maps x (N,C,H,W) to (N, outChannels, ceil(H/stride),
// ceil(W/stride)); outChannels >= C, stride >= 1.
func ZeroPadShortcut(x *gorgonia.Node, outChannels, stride int) (*gorgonia.Node, error) {
	s := x.Shape()
	if len(s) != 4 {
		return nil, fmt.Errorf("ops.ZeroPadShortcut: x has shape %v, want (N,C,H,W)", s)
	}
	if stride < 1 {
		return nil, fmt.Errorf("ops.ZeroPadShortcut: stride %d < 1", stride)
	}
	if outChannels < s[1] {
		return nil, fmt.Errorf("ops.ZeroPadShortcut: %d output channels for %d input channels, want at least as many", outChannels, s[1])
	}
	op := &ZeroPadShortcutOp{outC: outChannels, stride: stride, c: s[1], h: s[2], w: s[3], id: nextID()}
	n, err := gorgonia.ApplyOp(op, x)
	if err != nil {
		return nil, fmt.Errorf("ops.ZeroPadShortcut: %w", err)
	}
	return n, nil
}

// IsZeroPadShortcut reports whether n is a zero-padding shortcut of this library.
func IsZeroPadShortcut(n *gorgonia.Node) bool {
	_, ok := n.Op().(*ZeroPadShortcutOp)
	return ok
}

// PadBefore is the number of zero channels placed before the input channels.
func (op *ZeroPadShortcutOp) PadBefore() int { return (op.outC - op.c) / 2 }

func (op *ZeroPadShortcutOp) Arity() int { return 1 }
func (op *ZeroPadShortcutOp) Type() hm.Type {
	t := tensorType(4, hm.TypeVariable('a'))
	return fnType(t, t)
}
func (op *ZeroPadShortcutOp) outHW(h, w int) (int, int) {
	return (h + op.stride - 1) / op.stride, (w + op.stride - 1) / op.stride
}
func (op *ZeroPadShortcutOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	if len(s) != 4 || s[1] != op.c || s[2] != op.h || s[3] != op.w {
		return nil, fmt.Errorf("ZeroPadShortcut: input shape %v, want (N,%d,%d,%d)", s, op.c, op.h, op.w)
	}
	ho, wo := op.outHW(s[2], s[3])
	return tensor.Shape{s[0], op.outC, ho, wo}, nil
}
func (op *ZeroPadShortcutOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "ZeroPadShortcut(%d,%d)#%d", op.outC, op.stride, op.id)
}
func (op *ZeroPadShortcutOp) Hashcode() uint32 { return hashOf(op) }
func (op *ZeroPadShortcutOp) String() string {
	return fmt.Sprintf("ZeroPadShortcut(%d,/%d)", op.outC, op.stride)
}

func (op *ZeroPadShortcutOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "ZeroPadShortcut"
	if err := argCount(name, 1, vs); err != nil {
		return nil, err
	}
	x, err := argDense(name, 0, vs[0])
	if err != nil {
		return nil, err
	}
	s := x.Shape()
	if len(s) != 4 || s[1] != op.c || s[2] != op.h || s[3] != op.w {
		return nil, fmt.Errorf("%s: input shape %v, want (N,%d,%d,%d)", name, s, op.c, op.h, op.w)
	}
	ho, wo := op.outHW(s[2], s[3])
	op.shp = [4]int{s[0], op.outC, ho, wo}
	y := op.out.get(x.Dtype(), op.shp[:]...)
	a := zpGeom{n: s[0], c: op.c, outC: op.outC, lo: op.PadBefore(), h: s[2], w: s[3], ho: ho, wo: wo, stride: op.stride}
	if x.Dtype() == tensor.Float32 {
		op.k32 = zpArgs[float32]{zpGeom: a, x: x.Float32s(), y: y.Float32s()}
		zpRun(&op.k32)
		op.k32 = zpArgs[float32]{}
	} else {
		op.k64 = zpArgs[float64]{zpGeom: a, x: x.Float64s(), y: y.Float64s()}
		zpRun(&op.k64)
		op.k64 = zpArgs[float64]{}
	}
	return y, nil
}

type zpGeom struct {
	n, c, outC, lo, h, w, ho, wo, stride int
}

// zpArgs drives the forward (planes of y, back false) and the backward
// (planes of x written from dy, back true). x is the (N,C,H,W) side and y
// the (N,outC,Ho,Wo) side in both directions.
type zpArgs[T Float] struct {
	zpGeom
	x, y []T
	back bool
}

// zpRun runs a (an op's field, so that the split over the pool allocates
// nothing) over its planes.
func zpRun[T Float](a *zpArgs[T]) {
	planes, size := a.n*a.outC, a.ho*a.wo
	if a.back {
		planes, size = a.n*a.c, a.h*a.w
	}
	cpu.ParallelRun(a, planes, size)
}

func (a *zpArgs[T]) RunRange(lo, hi int) {
	st := a.stride
	if !a.back {
		for p := lo; p < hi; p++ {
			n, oc := p/a.outC, p%a.outC
			ys := a.y[p*a.ho*a.wo : (p+1)*a.ho*a.wo]
			c := oc - a.lo
			if c < 0 || c >= a.c {
				clear(ys)
				continue
			}
			xs := a.x[(n*a.c+c)*a.h*a.w : (n*a.c+c+1)*a.h*a.w]
			for i := 0; i < a.ho; i++ {
				row, src := ys[i*a.wo:(i+1)*a.wo], xs[i*st*a.w:]
				for j := range row {
					row[j] = src[j*st]
				}
			}
		}
		return
	}
	for p := lo; p < hi; p++ {
		n, c := p/a.c, p%a.c
		xs := a.x[p*a.h*a.w : (p+1)*a.h*a.w]
		p2 := n*a.outC + c + a.lo
		ys := a.y[p2*a.ho*a.wo : (p2+1)*a.ho*a.wo]
		if st == 1 {
			copy(xs, ys)
			continue
		}
		clear(xs)
		for i := 0; i < a.ho; i++ {
			row, dst := ys[i*a.wo:(i+1)*a.wo], xs[i*st*a.w:]
			for j, v := range row {
				dst[j*st] = v
			}
		}
	}
}

func (op *ZeroPadShortcutOp) DiffWRT(int) []bool { return []bool{true} }
func (op *ZeroPadShortcutOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	dx, err := gorgonia.ApplyOp(&zeroPadBackwardOp{fwd: op, id: nextID()}, grad)
	if err != nil {
		return nil, fmt.Errorf("ZeroPadShortcut backward: %w", err)
	}
	return gorgonia.Nodes{dx}, nil
}

// zeroPadBackwardOp: dx takes dy at the sampled positions of the input
// channels and zero elsewhere.
type zeroPadBackwardOp struct {
	noCommon
	nonDiff
	fwd *ZeroPadShortcutOp
	id  uint64
	outBuf
	shp [4]int
	k32 zpArgs[float32]
	k64 zpArgs[float64]
}

func (op *zeroPadBackwardOp) Arity() int { return 1 }
func (op *zeroPadBackwardOp) Type() hm.Type {
	t := tensorType(4, hm.TypeVariable('a'))
	return fnType(t, t)
}
func (op *zeroPadBackwardOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	f := op.fwd
	return tensor.Shape{s[0], f.c, f.h, f.w}, nil
}
func (op *zeroPadBackwardOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "ZeroPadShortcutBackward#%d", op.id)
}
func (op *zeroPadBackwardOp) Hashcode() uint32 { return hashOf(op) }
func (op *zeroPadBackwardOp) String() string   { return "ZeroPadShortcutBackward" }

func (op *zeroPadBackwardOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "ZeroPadShortcutBackward"
	if err := argCount(name, 1, vs); err != nil {
		return nil, err
	}
	dy, err := argDense(name, 0, vs[0])
	if err != nil {
		return nil, err
	}
	f := op.fwd
	ho, wo := f.outHW(f.h, f.w)
	s := dy.Shape()
	if len(s) != 4 || s[1] != f.outC || s[2] != ho || s[3] != wo {
		return nil, fmt.Errorf("%s: dy has shape %v, want (N,%d,%d,%d)", name, s, f.outC, ho, wo)
	}
	op.shp = [4]int{s[0], f.c, f.h, f.w}
	dx := op.out.get(dy.Dtype(), op.shp[:]...)
	a := zpGeom{n: s[0], c: f.c, outC: f.outC, lo: f.PadBefore(), h: f.h, w: f.w, ho: ho, wo: wo, stride: f.stride}
	if dy.Dtype() == tensor.Float32 {
		op.k32 = zpArgs[float32]{zpGeom: a, x: dx.Float32s(), y: dy.Float32s(), back: true}
		zpRun(&op.k32)
		op.k32 = zpArgs[float32]{}
	} else {
		op.k64 = zpArgs[float64]{zpGeom: a, x: dx.Float64s(), y: dy.Float64s(), back: true}
		zpRun(&op.k64)
		op.k64 = zpArgs[float64]{}
	}
	return dx, nil
}
