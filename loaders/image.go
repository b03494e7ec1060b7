package loaders

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // registers the JPEG decoder for image.Decode
	_ "image/png"  // registers the PNG decoder for image.Decode

	"golang.org/x/image/draw"
)

// render decodes an encoded image (JPEG or PNG) and writes it as uint8 CHW
// (c = 1 or 3 channels) of size h x w into dst, after the configured resize;
// without one, the image must be exactly w x h.
func (cfg *folderConfig) render(b []byte, c, h, w int, dst []uint8) error {
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("decoding: %w", err)
	}
	r := img.Bounds()
	if r.Dx() <= 0 || r.Dy() <= 0 {
		return fmt.Errorf("image is %dx%d", r.Dx(), r.Dy())
	}
	switch {
	case cfg.resizeH > 0:
		img = scale(img, r, cfg.resizeW, cfg.resizeH)
	case cfg.shorter > 0:
		// Resize the shorter side to the size and take the central square:
		// the same as scaling the central square of the source.
		s := min(r.Dx(), r.Dy())
		x0 := r.Min.X + (r.Dx()-s)/2
		y0 := r.Min.Y + (r.Dy()-s)/2
		img = scale(img, image.Rect(x0, y0, x0+s, y0+s), cfg.shorter, cfg.shorter)
	default:
		if r.Dx() != w || r.Dy() != h {
			return fmt.Errorf("image is %dx%d, want %dx%d (all images of a folder must have one size unless resized)", r.Dx(), r.Dy(), w, h)
		}
	}
	toCHW(img, c, dst)
	return nil
}

// scale resamples the part sr of src to w x h with a bilinear filter (which
// widens to average all source pixels when shrinking).
func scale(src image.Image, sr image.Rectangle, w, h int) *image.RGBA {
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.BiLinear.Scale(dst, dst.Bounds(), src, sr, draw.Src, nil)
	return dst
}

// luma is the ITU-R 601 luma of an 8-bit RGB pixel, as color.GrayModel
// computes it.
func luma(r, g, b uint8) uint8 {
	return uint8((19595*uint32(r) + 38470*uint32(g) + 7471*uint32(b) + 1<<15) >> 16)
}

// toCHW writes img (its whole bounds) as uint8 CHW with c = 1 (luma) or
// c = 3 (RGB) channels into dst. Alpha is ignored (colours are taken
// un-premultiplied where the image stores them so).
func toCHW(img image.Image, c int, dst []uint8) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	hw := w * h
	put := func(i int, r, g, bl uint8) {
		if c == 1 {
			dst[i] = luma(r, g, bl)
			return
		}
		dst[i], dst[hw+i], dst[2*hw+i] = r, g, bl
	}
	switch m := img.(type) {
	case *image.YCbCr:
		for y := range h {
			yi := (y+b.Min.Y-m.Rect.Min.Y)*m.YStride + (b.Min.X - m.Rect.Min.X)
			for x := range w {
				ci := m.COffset(x+b.Min.X, y+b.Min.Y)
				r, g, bl := color.YCbCrToRGB(m.Y[yi+x], m.Cb[ci], m.Cr[ci])
				put(y*w+x, r, g, bl)
			}
		}
	case *image.Gray:
		for y := range h {
			row := m.Pix[m.PixOffset(b.Min.X, y+b.Min.Y):][:w]
			for x, v := range row {
				if c == 1 {
					dst[y*w+x] = v
				} else {
					put(y*w+x, v, v, v)
				}
			}
		}
	case *image.RGBA:
		for y := range h {
			row := m.Pix[m.PixOffset(b.Min.X, y+b.Min.Y):][:4*w]
			for x := range w {
				put(y*w+x, row[4*x], row[4*x+1], row[4*x+2])
			}
		}
	case *image.NRGBA:
		for y := range h {
			row := m.Pix[m.PixOffset(b.Min.X, y+b.Min.Y):][:4*w]
			for x := range w {
				put(y*w+x, row[4*x], row[4*x+1], row[4*x+2])
			}
		}
	default:
		for y := range h {
			for x := range w {
				p := color.NRGBAModel.Convert(img.At(x+b.Min.X, y+b.Min.Y)).(color.NRGBA)
				put(y*w+x, p.R, p.G, p.B)
			}
		}
	}
}
