package loaders

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sharedData returns the path of ../../shared/datasets/rel (the real data
// sets, next to the repository), or skips the test when it is absent.
func sharedData(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join("..", "..", "shared", "datasets", rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("real data %s not available (%v); it is looked for at ../shared/datasets next to the repository", rel, err)
	}
	return p
}

func writeFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// idxBytes encodes an unsigned-byte IDX file.
func idxBytes(dims []int, data []byte) []byte {
	b := []byte{0, 0, 8, byte(len(dims))}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, uint32(d))
	}
	return append(b, data...)
}

// pattern returns n deterministic pseudo-random bytes.
func pattern(n int, seed uint64) []byte {
	r := newRand(seed, 0, 0, 0)
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint64())
	}
	return b
}

// cifarRecords encodes records with the given label bytes and pixels.
func cifarRecords(labels [][]byte, pix [][]byte) []byte {
	var b []byte
	for i := range labels {
		b = append(b, labels[i]...)
		b = append(b, pix[i]...)
	}
	return b
}

// tarEntry is a file or folder (name ends with /) of a test archive.
type tarEntry struct {
	name string
	data []byte
}

func tarBytes(t testing.TB, ents []tarEntry, gz bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if gz {
		return gzipBytes(buf.Bytes())
	}
	return buf.Bytes()
}

// testImage returns an RGB image of w x h with a pattern depending on seed.
func testImage(w, h int, seed uint64) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	p := pattern(3*w*h, seed)
	for y := range h {
		for x := range w {
			i := 3 * (y*w + x)
			img.SetNRGBA(x, y, color.NRGBA{p[i], p[i+1], p[i+2], 255})
		}
	}
	return img
}

// smoothImage returns a smooth RGB image (JPEG keeps it close).
func smoothImage(w, h int, seed uint64) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	s := float64(seed%7) + 1
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{
				uint8(128 + 100*math.Sin(float64(x)/(6*s))),
				uint8(128 + 100*math.Cos(float64(y)/(8*s))),
				uint8(40 * s),
				255,
			})
		}
	}
	return img
}

func pngBytes(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func jpegBytes(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// chwOf converts an NRGBA image to uint8 CHW.
func chwOf(img *image.NRGBA) []uint8 {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]uint8, 3*w*h)
	for y := range h {
		for x := range w {
			p := img.NRGBAAt(x, y)
			out[y*w+x], out[w*h+y*w+x], out[2*w*h+y*w+x] = p.R, p.G, p.B
		}
	}
	return out
}

// matVar is a variable for the test MAT-file writer.
type matVar struct {
	name  string
	class int
	dims  []int
	typ   uint32 // storage type
	data  []byte // already in the file's byte order
	flags uint32 // extra flag bits (complex)
}

// matWriter writes MATLAB level 5 MAT-files as MATLAB does: names of up to
// four bytes in the small element format, 8-byte padding, optionally each
// variable in an miCOMPRESSED (zlib) element.
type matWriter struct {
	order byteOrder
}

// byteOrder is binary.LittleEndian or binary.BigEndian.
type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

func (m matWriter) tag(b []byte, typ, n uint32) []byte {
	b = m.order.AppendUint32(b, typ)
	return m.order.AppendUint32(b, n)
}

func pad8(b []byte) []byte {
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	return b
}

func (m matWriter) element(b []byte, typ uint32, data []byte) []byte {
	if len(data) <= 4 && len(data) > 0 {
		b = m.order.AppendUint32(b, uint32(len(data))<<16|typ)
		b = append(b, data...)
		for range 4 - len(data) {
			b = append(b, 0)
		}
		return b
	}
	b = m.tag(b, typ, uint32(len(data)))
	return pad8(append(b, data...))
}

func (m matWriter) matrix(v matVar) []byte {
	var p []byte
	fl := m.order.AppendUint32(nil, uint32(v.class)|v.flags)
	fl = m.order.AppendUint32(fl, 0)
	p = m.element(p, miUINT32, fl)
	var dims []byte
	for _, d := range v.dims {
		dims = m.order.AppendUint32(dims, uint32(d))
	}
	p = m.element(p, miINT32, dims)
	p = m.element(p, miINT8, []byte(v.name))
	p = m.element(p, v.typ, v.data)
	return append(m.tag(nil, miMATRIX, uint32(len(p))), p...)
}

func (m matWriter) file(vars []matVar, compress bool) []byte {
	head := make([]byte, 128)
	for i := range 124 {
		head[i] = ' '
	}
	copy(head, "MATLAB 5.0 MAT-file, Platform: GLNXA64, Created by: loaders tests")
	m.order.PutUint16(head[124:], 0x0100)
	if m.order.String() == binary.LittleEndian.String() {
		copy(head[126:], "IM")
	} else {
		copy(head[126:], "MI")
	}
	b := head
	for _, v := range vars {
		el := m.matrix(v)
		if !compress {
			b = append(b, el...)
			continue
		}
		var z bytes.Buffer
		zw := zlib.NewWriter(&z)
		zw.Write(el)
		zw.Close()
		b = m.tag(b, miCOMPRESSED, uint32(z.Len()))
		b = append(b, z.Bytes()...)
	}
	return b
}

// svhnVars returns X (uint8 32x32x3xN, column-major) and y (double class
// stored as uint8, as MATLAB does, 10 for the digit 0) for the given CHW
// images and digit labels.
func svhnVars(chw [][]byte, digits []int, yAsDouble bool, order byteOrder) []matVar {
	n := len(chw)
	x := make([]byte, n*3072)
	for i, img := range chw {
		for ch := range 3 {
			for r := range 32 {
				for c := range 32 {
					x[i*3072+ch*1024+c*32+r] = img[ch*1024+r*32+c]
				}
			}
		}
	}
	y := make([]byte, 0, 8*n)
	typ := uint32(miUINT8)
	if yAsDouble {
		typ = miDOUBLE
	}
	for _, d := range digits {
		v := d
		if v == 0 {
			v = 10
		}
		if yAsDouble {
			y = order.AppendUint64(y, math.Float64bits(float64(v)))
		} else {
			y = append(y, byte(v))
		}
	}
	return []matVar{
		{name: "X", class: mxUINT8, dims: []int{32, 32, 3, n}, typ: miUINT8, data: x},
		{name: "y", class: mxDOUBLE, dims: []int{n, 1}, typ: typ, data: y},
	}
}

// memData is a small in-memory data set for pipeline tests.
func memData(n, c, h, w, classes int) *memDataset {
	names := make([]string, classes)
	for i := range names {
		names[i] = string(rune('a' + i))
	}
	labels := make([]int32, n)
	for i := range labels {
		labels[i] = int32(i % classes)
	}
	return &memDataset{name: "mem", c: c, h: h, w: w, pix: pattern(n*c*h*w, 42), labels: labels, classes: names}
}
