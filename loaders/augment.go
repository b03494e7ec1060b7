package loaders

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Augment is a random transformation of one uint8 CHW image, applied by the
// [Batcher] before normalisation. A nil Augment leaves images unchanged.
//
// Apply must draw all its randomness from r, which the Batcher seeds from
// the batcher seed, the epoch and the image index, so that augmentation is
// reproducible. Apply is called concurrently from several goroutines and must
// not modify the Augment; it should not allocate.
type Augment interface {
	// OutShape is the shape Apply writes for an input of shape (c, h, w).
	OutShape(c, h, w int) (oc, oh, ow int)
	// Apply writes the transform of src (shape c, h, w) into dst (the
	// shape OutShape returns).
	Apply(dst, src []uint8, c, h, w int, r *rand.Rand)
}

// PadCropFlip pads the image with Pad zero pixels on every border, takes a
// random crop of the original size, and, when Flip is set, mirrors it
// horizontally with probability 1/2: the CIFAR augmentation of the paper
// (Pad 4). The zero padding becomes (0 - mean)/std after normalisation, as
// in the usual implementations.
type PadCropFlip struct {
	Pad  int
	Flip bool
}

// OutShape returns the input shape.
func (a PadCropFlip) OutShape(c, h, w int) (int, int, int) { return c, h, w }

// Apply draws the crop offsets (row, then column, each uniform in
// [0, 2*Pad]) and then the flip.
func (a PadCropFlip) Apply(dst, src []uint8, c, h, w int, r *rand.Rand) {
	p := max(a.Pad, 0)
	dy := randN(r, 2*p+1) - p // source row of output row 0
	dx := randN(r, 2*p+1) - p
	flip := a.Flip && randBool(r)
	// Output column x reads source column sx = x+dx (or, flipped,
	// (w-1-x)+dx); columns outside [0, w) are padding.
	for ch := range c {
		sp := src[ch*h*w : (ch+1)*h*w]
		dp := dst[ch*h*w : (ch+1)*h*w]
		for y := range h {
			row := dp[y*w : (y+1)*w]
			sy := y + dy
			if sy < 0 || sy >= h {
				clear(row)
				continue
			}
			srow := sp[sy*w : (sy+1)*w]
			if !flip {
				// Valid output columns: max(0,-dx) .. min(w, w-dx).
				lo, hi := max(0, -dx), min(w, w-dx)
				if lo >= hi {
					clear(row)
					continue
				}
				clear(row[:lo])
				copy(row[lo:hi], srow[lo+dx:hi+dx])
				clear(row[hi:])
				continue
			}
			for x := range row {
				sx := w - 1 - x + dx
				if sx < 0 || sx >= w {
					row[x] = 0
				} else {
					row[x] = srow[sx]
				}
			}
		}
	}
}

// RandomResizedCrop takes a crop of random area (a fraction in
// [MinScale, MaxScale] of the image) and aspect ratio (log-uniform in
// [MinRatio, MaxRatio]), resizes it bilinearly to Size x Size and, when Flip
// is set, mirrors it with probability 1/2: the ImageNet training
// augmentation (Size 224, scale 0.08..1, ratio 3/4..4/3), following
// torchvision's RandomResizedCrop (ten tries, then a centre crop). Zero
// scales or ratios mean those defaults.
type RandomResizedCrop struct {
	Size               int
	MinScale, MaxScale float64
	MinRatio, MaxRatio float64
	Flip               bool
}

// OutShape returns (c, Size, Size).
func (a RandomResizedCrop) OutShape(c, h, w int) (int, int, int) { return c, a.Size, a.Size }

// Apply crops, resizes and flips.
func (a RandomResizedCrop) Apply(dst, src []uint8, c, h, w int, r *rand.Rand) {
	smin, smax := a.MinScale, a.MaxScale
	if smin == 0 && smax == 0 {
		smin, smax = 0.08, 1
	}
	rmin, rmax := a.MinRatio, a.MaxRatio
	if rmin == 0 && rmax == 0 {
		rmin, rmax = 3.0/4, 4.0/3
	}
	area := float64(h * w)
	lr0, lr1 := math.Log(rmin), math.Log(rmax)
	top, left, ch, cw := 0, 0, 0, 0
	for range 10 {
		ta := area * (smin + (smax-smin)*randFloat(r))
		ar := math.Exp(lr0 + (lr1-lr0)*randFloat(r))
		tw := int(math.Round(math.Sqrt(ta * ar)))
		th := int(math.Round(math.Sqrt(ta / ar)))
		if tw > 0 && tw <= w && th > 0 && th <= h {
			top = randN(r, h-th+1)
			left = randN(r, w-tw+1)
			ch, cw = th, tw
			break
		}
	}
	if ch == 0 {
		// Fallback: the largest centred crop with the ratio clamped.
		ratio := float64(w) / float64(h)
		switch {
		case ratio < rmin:
			cw, ch = w, int(math.Round(float64(w)/rmin))
		case ratio > rmax:
			ch, cw = h, int(math.Round(float64(h)*rmax))
		default:
			cw, ch = w, h
		}
		ch, cw = max(1, min(ch, h)), max(1, min(cw, w))
		top, left = (h-ch)/2, (w-cw)/2
	}
	flip := a.Flip && randBool(r)
	resizeBilinear(dst, src, c, h, w, top, left, ch, cw, a.Size, a.Size, flip)
}

// resizeBilinear resamples the crop (top, left, ch, cw) of the CHW image src
// to oh x ow (pixel centres aligned, as align_corners=False), mirrored when
// flip is set.
func resizeBilinear(dst, src []uint8, c, h, w, top, left, ch, cw, oh, ow int, flip bool) {
	sy := float64(ch) / float64(oh)
	sx := float64(cw) / float64(ow)
	for y := range oh {
		fy := (float64(y)+0.5)*sy - 0.5
		fy = min(max(fy, 0), float64(ch-1))
		y0 := int(fy)
		y1 := min(y0+1, ch-1)
		wy := fy - float64(y0)
		for x := range ow {
			ox := x
			if flip {
				ox = ow - 1 - x
			}
			fx := (float64(ox)+0.5)*sx - 0.5
			fx = min(max(fx, 0), float64(cw-1))
			x0 := int(fx)
			x1 := min(x0+1, cw-1)
			wx := fx - float64(x0)
			i00 := (top+y0)*w + left + x0
			i01 := (top+y0)*w + left + x1
			i10 := (top+y1)*w + left + x0
			i11 := (top+y1)*w + left + x1
			for k := range c {
				p := src[k*h*w:]
				v := (1-wy)*((1-wx)*float64(p[i00])+wx*float64(p[i01])) +
					wy*((1-wx)*float64(p[i10])+wx*float64(p[i11]))
				dst[k*oh*ow+y*ow+x] = uint8(min(max(math.Round(v), 0), 255))
			}
		}
	}
}

// CenterCrop takes the central Size x Size square (zero-padded where the
// image is smaller): the ImageNet evaluation transform after resizing the
// shorter side to 256 (Size 224). It uses no randomness.
type CenterCrop struct {
	Size int
}

// OutShape returns (c, Size, Size).
func (a CenterCrop) OutShape(c, h, w int) (int, int, int) { return c, a.Size, a.Size }

// Apply crops.
func (a CenterCrop) Apply(dst, src []uint8, c, h, w int, _ *rand.Rand) {
	s := a.Size
	top, left := (h-s)/2, (w-s)/2
	for k := range c {
		for y := range s {
			row := dst[k*s*s+y*s : k*s*s+(y+1)*s]
			sy := top + y
			if sy < 0 || sy >= h {
				clear(row)
				continue
			}
			for x := range row {
				sx := left + x
				if sx < 0 || sx >= w {
					row[x] = 0
				} else {
					row[x] = src[k*h*w+sy*w+sx]
				}
			}
		}
	}
}

// Normalize maps a pixel u of channel c to (u/255 - Mean[c]) / Std[c].
// Mean and Std hold one value per channel, or one for all channels; empty
// means 0 and 1 (pixels scaled to [0, 1]).
type Normalize struct {
	Mean, Std []float64
}

// table returns, for each of c channels, the output value of each pixel
// value, checking the lengths and that Std is non-zero.
func (n Normalize) table(c int) ([][256]float64, error) {
	pick := func(v []float64, ch int, def float64, what string) (float64, error) {
		switch len(v) {
		case 0:
			return def, nil
		case 1:
			return v[0], nil
		case c:
			return v[ch], nil
		}
		return 0, fmt.Errorf("Normalize.%s has %d values for %d channels", what, len(v), c)
	}
	t := make([][256]float64, c)
	for ch := range c {
		m, err := pick(n.Mean, ch, 0, "Mean")
		if err != nil {
			return nil, err
		}
		s, err := pick(n.Std, ch, 1, "Std")
		if err != nil {
			return nil, err
		}
		if s == 0 || math.IsNaN(s) || math.IsInf(s, 0) || math.IsNaN(m) || math.IsInf(m, 0) {
			return nil, fmt.Errorf("Normalize: channel %d has mean %v and std %v", ch, m, s)
		}
		for u := range 256 {
			t[ch][u] = (float64(u)/255 - m) / s
		}
	}
	return t, nil
}

// Channel statistics of the original data sets, in [0, 1] units (population
// standard deviation over all pixels of the training set).
var (
	cifar10Mean  = []float64{0.49139968, 0.48215841, 0.44653091}
	cifar10Std   = []float64{0.24703223, 0.24348513, 0.26158784}
	cifar100Mean = []float64{0.50707516, 0.48654887, 0.44091784}
	cifar100Std  = []float64{0.26733429, 0.25643846, 0.27615047}
	imagenetMean = []float64{0.485, 0.456, 0.406}
	imagenetStd  = []float64{0.229, 0.224, 0.225}
)

// Preset returns the normalisation and augmentation of the paper (section
// 4.1) for a data set name as accepted by [Open]:
//
//   - cifar10, cifar10-jpeg, cifar100: per-channel mean/std of the training
//     set; training adds PadCropFlip{Pad: 4, Flip: true}.
//   - svhn: pixels divided by 255, no augmentation.
//   - mnist: pixels scaled to [0, 1], no augmentation.
//   - imagenet: ImageNet mean/std; training uses RandomResizedCrop{Size:
//     224, Flip: true}, evaluation CenterCrop{Size: 224} (on images opened
//     with ResizeShorter(256), as Open does for imagenet).
//
// Any other name, including the generic imagefolder, gets [0, 1] scaling
// and no augmentation. The returned slices are fresh copies.
func Preset(name string, train bool) (Normalize, Augment) {
	clone := func(m, s []float64) Normalize {
		return Normalize{Mean: append([]float64(nil), m...), Std: append([]float64(nil), s...)}
	}
	switch name {
	case "cifar10", "cifar10-jpeg", "cifar100":
		n := clone(cifar10Mean, cifar10Std)
		if name == "cifar100" {
			n = clone(cifar100Mean, cifar100Std)
		}
		if train {
			return n, PadCropFlip{Pad: 4, Flip: true}
		}
		return n, nil
	case "imagenet":
		n := clone(imagenetMean, imagenetStd)
		if train {
			return n, RandomResizedCrop{Size: 224, Flip: true}
		}
		return n, CenterCrop{Size: 224}
	}
	return Normalize{}, nil
}
