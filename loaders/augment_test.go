package loaders

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// padCropFlipRef pads with zeros, crops at the drawn offset and flips,
// literally.
func padCropFlipRef(src []uint8, c, h, w, pad int, flipOn bool, r *rand.Rand) []uint8 {
	oy := randN(r, 2*pad+1)
	ox := randN(r, 2*pad+1)
	flip := flipOn && randBool(r)
	ph, pw := h+2*pad, w+2*pad
	padded := make([]uint8, c*ph*pw)
	for ch := range c {
		for y := range h {
			for x := range w {
				padded[ch*ph*pw+(y+pad)*pw+x+pad] = src[ch*h*w+y*w+x]
			}
		}
	}
	out := make([]uint8, c*h*w)
	for ch := range c {
		for y := range h {
			for x := range w {
				sx := x
				if flip {
					sx = w - 1 - x
				}
				out[ch*h*w+y*w+x] = padded[ch*ph*pw+(y+oy)*pw+sx+ox]
			}
		}
	}
	return out
}

func TestPadCropFlip(t *testing.T) {
	c, h, w := 3, 7, 9
	src := pattern(c*h*w, 5)
	dst := make([]uint8, len(src))
	PadCropFlip{}.Apply(dst, src, c, h, w, newRand(1, 0, 0, 0))
	if !bytes.Equal(dst, src) {
		t.Fatal("Pad 0 without flip is not the identity")
	}
	seen := map[[3]int]bool{}
	for seed := range uint64(2000) {
		a := PadCropFlip{Pad: 4, Flip: true}
		a.Apply(dst, src, c, h, w, newRand(seed, 1, 0, 0))
		want := padCropFlipRef(src, c, h, w, 4, true, newRand(seed, 1, 0, 0))
		if !bytes.Equal(dst, want) {
			t.Fatalf("seed %d: differs from the reference", seed)
		}
		r := newRand(seed, 1, 0, 0)
		oy, ox := randN(r, 9), randN(r, 9)
		fl := 0
		if randBool(r) {
			fl = 1
		}
		seen[[3]int{oy, ox, fl}] = true
	}
	if len(seen) != 9*9*2 {
		t.Fatalf("%d of 162 crop/flip combinations seen", len(seen))
	}
	if c2, h2, w2 := (PadCropFlip{Pad: 4}).OutShape(3, 32, 32); c2 != 3 || h2 != 32 || w2 != 32 {
		t.Fatal("OutShape")
	}
	// A pad larger than the image only gives padding, without panicking.
	PadCropFlip{Pad: 20, Flip: true}.Apply(dst, src, c, h, w, newRand(3, 0, 0, 0))
}

func TestCenterCrop(t *testing.T) {
	src := make([]uint8, 2*6*6)
	for i := range src {
		src[i] = uint8(i)
	}
	dst := make([]uint8, 2*4*4)
	CenterCrop{Size: 4}.Apply(dst, src, 2, 6, 6, nil)
	for ch := range 2 {
		for y := range 4 {
			for x := range 4 {
				if got, want := dst[ch*16+y*4+x], src[ch*36+(y+1)*6+x+1]; got != want {
					t.Fatalf("crop (%d,%d,%d) = %d, want %d", ch, y, x, got, want)
				}
			}
		}
	}
	big := make([]uint8, 2*8*8)
	CenterCrop{Size: 8}.Apply(big, src, 2, 6, 6, nil)
	if big[0] != 0 || big[9] != src[0] || big[63] != 0 {
		t.Fatal("CenterCrop larger than the image should zero-pad")
	}
}

func TestRandomResizedCrop(t *testing.T) {
	c, h, w := 3, 10, 10
	src := pattern(c*h*w, 9)
	dst := make([]uint8, len(src))
	whole := RandomResizedCrop{Size: 10, MinScale: 1, MaxScale: 1, MinRatio: 1, MaxRatio: 1}
	whole.Apply(dst, src, c, h, w, newRand(1, 0, 0, 0))
	if !bytes.Equal(dst, src) {
		t.Fatal("full-scale crop to the same size is not the identity")
	}
	// Flipped, it is the mirror image whenever the flip is drawn.
	flipped := 0
	for seed := range uint64(20) {
		whole.Flip = true
		whole.Apply(dst, src, c, h, w, newRand(seed, 0, 0, 0))
		mirror := true
		for ch := range c {
			for y := range h {
				for x := range w {
					if dst[ch*100+y*10+x] != src[ch*100+y*10+9-x] {
						mirror = false
					}
				}
			}
		}
		if mirror {
			flipped++
		} else if !bytes.Equal(dst, src) {
			t.Fatal("neither identity nor mirror")
		}
	}
	if flipped == 0 || flipped == 20 {
		t.Fatalf("flipped %d of 20", flipped)
	}
	// A constant image stays constant at any crop.
	for i := range src {
		src[i] = 77
	}
	out := make([]uint8, 3*224*224)
	a := RandomResizedCrop{Size: 224, Flip: true}
	if c2, h2, w2 := a.OutShape(3, 10, 10); c2 != 3 || h2 != 224 || w2 != 224 {
		t.Fatal("OutShape")
	}
	for seed := range uint64(10) {
		a.Apply(out, src, c, h, w, newRand(seed, 0, 0, 0))
		if slices.ContainsFunc(out, func(v uint8) bool { return v != 77 }) {
			t.Fatal("constant image changed")
		}
	}
	// Impossible ratios fall back to a centre crop.
	odd := RandomResizedCrop{Size: 4, MinScale: 1, MaxScale: 1, MinRatio: 3, MaxRatio: 4}
	odd.Apply(make([]uint8, 3*16), src, c, h, w, newRand(1, 0, 0, 0))
}

func TestNormalize(t *testing.T) {
	n := Normalize{Mean: []float64{0.5, 0.25}, Std: []float64{0.5, 2}}
	tb, err := n.table(2)
	if err != nil {
		t.Fatal(err)
	}
	if tb[0][255] != 1 || tb[0][0] != -1 || math.Abs(tb[1][51]-(0.2-0.25)/2) > 1e-15 {
		t.Fatalf("table: %v %v %v", tb[0][255], tb[0][0], tb[1][51])
	}
	tb, _ = Normalize{}.table(3)
	if tb[2][255] != 1 || tb[2][0] != 0 {
		t.Fatal("empty Normalize should scale to [0, 1]")
	}
	for _, bad := range []Normalize{{Mean: []float64{1, 2}}, {Std: []float64{0}}, {Mean: []float64{math.NaN()}}} {
		if _, err := bad.table(3); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestPreset(t *testing.T) {
	n, a := Preset("cifar10", true)
	if a != (PadCropFlip{Pad: 4, Flip: true}) || len(n.Mean) != 3 || n.Mean[0] != cifar10Mean[0] {
		t.Fatalf("cifar10 train: %v %v", n, a)
	}
	n.Mean[0] = 9 // a copy
	if n, a := Preset("cifar10", false); a != nil || n.Mean[0] != cifar10Mean[0] {
		t.Fatal("cifar10 eval")
	}
	if n, _ := Preset("cifar100", true); n.Std[2] != cifar100Std[2] {
		t.Fatal("cifar100")
	}
	for _, name := range []string{"svhn", "mnist", "imagefolder", "nonsense"} {
		for _, train := range []bool{true, false} {
			if n, a := Preset(name, train); a != nil || n.Mean != nil || n.Std != nil {
				t.Fatalf("%s: %v %v", name, n, a)
			}
		}
	}
	if _, a := Preset("imagenet", true); a != (RandomResizedCrop{Size: 224, Flip: true}) {
		t.Fatalf("imagenet train %v", a)
	}
	if _, a := Preset("imagenet", false); a != (CenterCrop{Size: 224}) {
		t.Fatalf("imagenet eval %v", a)
	}
}
