package loaders

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
)

// MATLAB level 5 MAT-file data types (the "mi" types of the format
// description) and array classes ("mx").
const (
	miINT8       = 1
	miUINT8      = 2
	miINT16      = 3
	miUINT16     = 4
	miINT32      = 5
	miUINT32     = 6
	miSINGLE     = 7
	miDOUBLE     = 9
	miINT64      = 12
	miUINT64     = 13
	miMATRIX     = 14
	miCOMPRESSED = 15

	mxCHAR   = 4
	mxDOUBLE = 6
	mxUINT8  = 9
	mxUINT64 = 15

	matFlagComplex = 0x0800
)

// maxMatBytes bounds the data a MAT-file element may announce (8 GiB).
const maxMatBytes = 1 << 33

// matSize is the byte size of a numeric mi type, 0 if it is not numeric.
func matSize(t uint32) int {
	switch t {
	case miINT8, miUINT8:
		return 1
	case miINT16, miUINT16:
		return 2
	case miINT32, miUINT32, miSINGLE:
		return 4
	case miDOUBLE, miINT64, miUINT64:
		return 8
	}
	return 0
}

// matArray is one numeric variable of a MAT-file.
type matArray struct {
	name  string
	class int   // mx class
	dims  []int // column-major dimensions
	typ   uint32
	data  []byte // real part, stored as typ, column-major
	order binary.ByteOrder
}

func (a *matArray) numel() int {
	n := 1
	for _, d := range a.dims {
		n *= d
	}
	return n
}

// float64s converts the real part to float64.
func (a *matArray) float64s() []float64 {
	n := a.numel()
	out := make([]float64, n)
	b, o := a.data, a.order
	for i := range out {
		switch a.typ {
		case miINT8:
			out[i] = float64(int8(b[i]))
		case miUINT8:
			out[i] = float64(b[i])
		case miINT16:
			out[i] = float64(int16(o.Uint16(b[2*i:])))
		case miUINT16:
			out[i] = float64(o.Uint16(b[2*i:]))
		case miINT32:
			out[i] = float64(int32(o.Uint32(b[4*i:])))
		case miUINT32:
			out[i] = float64(o.Uint32(b[4*i:]))
		case miSINGLE:
			out[i] = float64(math.Float32frombits(o.Uint32(b[4*i:])))
		case miDOUBLE:
			out[i] = math.Float64frombits(o.Uint64(b[8*i:]))
		case miINT64:
			out[i] = float64(int64(o.Uint64(b[8*i:])))
		case miUINT64:
			out[i] = float64(o.Uint64(b[8*i:]))
		}
	}
	return out
}

// parseMat reads a MATLAB level 5 MAT-file (as written by MATLAB up to -v7,
// with or without compression) and returns the numeric variables whose names
// want accepts. Other variables are skipped; a wanted variable that is not a
// real numeric array is an error.
func parseMat(r io.Reader, want func(string) bool) (map[string]*matArray, error) {
	var head [128]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, fmt.Errorf("reading the 128-byte header: %w", err)
	}
	if bytes.HasPrefix(head[:], []byte("MATLAB 7.3 MAT-file")) {
		return nil, errors.New("MATLAB v7.3 (HDF5) MAT-file not supported; save it with -v7")
	}
	if !bytes.HasPrefix(head[:], []byte("MATLAB 5.0 MAT-file")) {
		return nil, errors.New("not a MATLAB 5.0 MAT-file (bad header text)")
	}
	var order binary.ByteOrder
	switch string(head[126:128]) {
	case "IM":
		order = binary.LittleEndian
	case "MI":
		order = binary.BigEndian
	default:
		return nil, fmt.Errorf("bad endian indicator %q", head[126:128])
	}
	if v := order.Uint16(head[124:]); v != 0x0100 {
		return nil, fmt.Errorf("MAT-file version %#04x, want 0x0100", v)
	}
	vars := map[string]*matArray{}
	for elem := 0; ; elem++ {
		var tag [8]byte
		if _, err := io.ReadFull(r, tag[:]); err == io.EOF {
			return vars, nil
		} else if err != nil {
			return nil, fmt.Errorf("element %d: truncated tag: %w", elem, err)
		}
		typ, nbytes := order.Uint32(tag[0:]), order.Uint32(tag[4:])
		if typ>>16 != 0 {
			return nil, fmt.Errorf("element %d: unexpected small data element at top level", elem)
		}
		var payload []byte
		switch typ {
		case miMATRIX:
			b, err := readN(r, int64(nbytes))
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", elem, err)
			}
			payload = b
		case miCOMPRESSED:
			b, err := readCompressed(r, int64(nbytes), order)
			if err != nil {
				return nil, fmt.Errorf("element %d (compressed): %w", elem, err)
			}
			payload = b
		default:
			// Not a variable: skip it.
			if _, err := io.CopyN(io.Discard, r, int64(nbytes)); err != nil {
				return nil, fmt.Errorf("element %d: skipping %d bytes of type %d: %w", elem, nbytes, typ, err)
			}
			continue
		}
		a, err := parseMatrix(payload, order, want)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", elem, err)
		}
		if a == nil {
			continue
		}
		if _, dup := vars[a.name]; dup {
			return nil, fmt.Errorf("variable %q appears twice", a.name)
		}
		vars[a.name] = a
	}
}

// readCompressed inflates an miCOMPRESSED element of n bytes, which holds
// one miMATRIX element, and returns that element's payload.
func readCompressed(r io.Reader, n int64, order binary.ByteOrder) ([]byte, error) {
	lr := &io.LimitedReader{R: r, N: n}
	zr, err := zlib.NewReader(bufio.NewReader(lr))
	if err != nil {
		return nil, fmt.Errorf("zlib: %w", err)
	}
	var tag [8]byte
	if _, err := io.ReadFull(zr, tag[:]); err != nil {
		return nil, fmt.Errorf("zlib: reading the inner tag: %w", err)
	}
	typ, nbytes := order.Uint32(tag[0:]), order.Uint32(tag[4:])
	if typ != miMATRIX {
		return nil, fmt.Errorf("compressed element holds type %d, want miMATRIX (14)", typ)
	}
	payload, err := readN(zr, int64(nbytes))
	if err != nil {
		return nil, fmt.Errorf("zlib: %w", err)
	}
	if err := expectEOF(zr); err != nil {
		return nil, fmt.Errorf("zlib: after the matrix: %w", err)
	}
	// Whatever the compressed stream did not use is skipped.
	if _, err := io.Copy(io.Discard, lr); err != nil {
		return nil, err
	}
	if lr.N > 0 {
		return nil, &errTruncated{n - lr.N, n}
	}
	return payload, nil
}

// subElement reads the sub-element at b[off:], in the normal or the small
// (4-byte) format, and returns its type, its data and the offset of the next
// sub-element (8-byte aligned).
func subElement(b []byte, off int, order binary.ByteOrder) (typ uint32, data []byte, next int, err error) {
	if len(b)-off < 8 {
		return 0, nil, 0, errors.New("truncated sub-element tag")
	}
	w := order.Uint32(b[off:])
	if w>>16 != 0 {
		n := int(w >> 16)
		if n > 4 {
			return 0, nil, 0, fmt.Errorf("small data element of %d bytes (max 4)", n)
		}
		return w & 0xffff, b[off+4 : off+4+n], off + 8, nil
	}
	n := uint64(order.Uint32(b[off+4:]))
	if n > uint64(len(b)-off-8) {
		return 0, nil, 0, fmt.Errorf("sub-element of %d bytes, only %d left", n, len(b)-off-8)
	}
	data = b[off+8 : off+8+int(n)]
	next = min(off+8+int((n+7)&^7), len(b))
	return w, data, next, nil
}

// parseMatrix decodes the payload of an miMATRIX element. It returns nil for
// an empty element or a variable that want rejects.
func parseMatrix(b []byte, order binary.ByteOrder, want func(string) bool) (*matArray, error) {
	if len(b) == 0 {
		return nil, nil
	}
	typ, flags, off, err := subElement(b, 0, order)
	if err != nil {
		return nil, fmt.Errorf("array flags: %w", err)
	}
	if typ != miUINT32 || len(flags) != 8 {
		return nil, fmt.Errorf("array flags of type %d and %d bytes, want miUINT32 (6) and 8", typ, len(flags))
	}
	fw := order.Uint32(flags)
	class := int(fw & 0xff)

	typ, dimb, off, err := subElement(b, off, order)
	if err != nil {
		return nil, fmt.Errorf("dimensions: %w", err)
	}
	if typ != miINT32 || len(dimb)%4 != 0 || len(dimb) < 8 {
		return nil, fmt.Errorf("dimensions of type %d and %d bytes, want miINT32 (5) and at least 2 values", typ, len(dimb))
	}
	dims := make([]int, len(dimb)/4)
	total := int64(1)
	for i := range dims {
		d := int32(order.Uint32(dimb[4*i:]))
		if d < 0 {
			return nil, fmt.Errorf("negative dimension %d", d)
		}
		dims[i] = int(d)
		if d > 0 && total > maxMatBytes/int64(d) {
			return nil, fmt.Errorf("dimensions %v too large", dims[:i+1])
		}
		total *= int64(d)
	}

	typ, nameb, off, err := subElement(b, off, order)
	if err != nil {
		return nil, fmt.Errorf("array name: %w", err)
	}
	if typ != miINT8 {
		return nil, fmt.Errorf("array name of type %d, want miINT8 (1)", typ)
	}
	name := string(nameb)
	if !want(name) {
		return nil, nil
	}
	if class == mxCHAR || class < mxDOUBLE || class > mxUINT64 {
		return nil, fmt.Errorf("variable %q: array class %d is not numeric", name, class)
	}
	if fw&matFlagComplex != 0 {
		return nil, fmt.Errorf("variable %q is complex", name)
	}
	typ, data, _, err := subElement(b, off, order)
	if err != nil {
		return nil, fmt.Errorf("variable %q: real part: %w", name, err)
	}
	sz := matSize(typ)
	if sz == 0 {
		return nil, fmt.Errorf("variable %q: real part of type %d is not numeric", name, typ)
	}
	if int64(len(data)) != total*int64(sz) {
		return nil, fmt.Errorf("variable %q: real part has %d bytes, want %d (%v of type %d)", name, len(data), total*int64(sz), dims, typ)
	}
	return &matArray{name: name, class: class, dims: dims, typ: typ, data: data, order: order}, nil
}

// SVHN reads the cropped-digits version of SVHN (the official
// train_32x32.mat or test_32x32.mat, MATLAB v5 format with or without
// compression) from dir, or from the .mat file dir names. X (uint8,
// 32x32x3xN) holds the images and y (N values) the labels, 10 meaning the
// digit 0; labels are the digits 0..9, named "0".."9". Images are 3x32x32.
func SVHN(dir string, train bool) (Dataset, error) {
	file := "test_32x32.mat"
	if train {
		file = "train_32x32.mat"
	}
	p := filepath.Join(dir, file)
	if isFile(dir) {
		p = dir
	} else if !isFile(p) {
		return nil, fmt.Errorf("svhn: %s: no %s: %w", dir, file, fs.ErrNotExist)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("svhn: %w", err)
	}
	defer f.Close()
	ds, err := svhnFromMat(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("svhn: %s: %w", p, err)
	}
	ds.name = p
	return ds, nil
}

func svhnFromMat(r io.Reader) (*memDataset, error) {
	vars, err := parseMat(r, func(n string) bool { return n == "X" || n == "y" })
	if err != nil {
		return nil, err
	}
	x, y := vars["X"], vars["y"]
	if x == nil || y == nil {
		return nil, errors.New("missing variable X or y")
	}
	if x.class != mxUINT8 || x.typ != miUINT8 {
		return nil, fmt.Errorf("X has class %d stored as type %d, want uint8 (class 9, type 2)", x.class, x.typ)
	}
	d := x.dims
	if len(d) == 3 { // MATLAB drops a trailing singleton dimension
		d = append(d, 1)
	}
	if len(d) != 4 || d[2] != 3 {
		return nil, fmt.Errorf("X has dimensions %v, want 32x32x3xN", x.dims)
	}
	if d[0] != 32 || d[1] != 32 {
		return nil, fmt.Errorf("X holds %dx%d images, want 32x32", d[0], d[1])
	}
	n := d[3]
	if n == 0 {
		return nil, errors.New("X holds no images")
	}
	if y.numel() != n {
		return nil, fmt.Errorf("y has %d labels for %d images", y.numel(), n)
	}
	labels := make([]int32, n)
	for i, v := range y.float64s() {
		if v != math.Trunc(v) || v < 1 || v > 10 {
			return nil, fmt.Errorf("label %v of image %d out of range 1..10", v, i)
		}
		labels[i] = int32(v) % 10
	}
	// X(r, c, ch, i) is at r + 32c + 1024ch + 3072i (column-major); CHW
	// wants ch*1024 + r*32 + c.
	pix := make([]uint8, n*cifarPixels)
	for i := range n {
		src := x.data[i*cifarPixels : (i+1)*cifarPixels]
		dst := pix[i*cifarPixels : (i+1)*cifarPixels]
		for ch := range 3 {
			s, t := src[ch*1024:(ch+1)*1024], dst[ch*1024:(ch+1)*1024]
			for c := range 32 {
				col := s[c*32 : (c+1)*32]
				for r, v := range col {
					t[r*32+c] = v
				}
			}
		}
	}
	names := make([]string, 10)
	for i := range names {
		names[i] = strconv.Itoa(i)
	}
	return &memDataset{c: 3, h: 32, w: 32, pix: pix, labels: labels, classes: names}, nil
}
