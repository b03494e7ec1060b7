package loaders

import (
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// maxIDXBytes bounds the data an IDX header may announce (4 GiB).
const maxIDXBytes = 1 << 32

// parseIDX reads an IDX file of unsigned bytes (type 0x08): the magic number
// 0x0000 08 nd, nd big-endian uint32 dimensions, then the data, then the end
// of the stream.
func parseIDX(r io.Reader) (dims []int, data []byte, err error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, nil, fmt.Errorf("reading magic number: %w", err)
	}
	if head[0] != 0 || head[1] != 0 {
		return nil, nil, fmt.Errorf("bad magic number %#08x (not an IDX file)", binary.BigEndian.Uint32(head[:]))
	}
	if head[2] != 0x08 {
		return nil, nil, fmt.Errorf("IDX element type %#02x, want 0x08 (unsigned byte)", head[2])
	}
	nd := int(head[3])
	if nd < 1 || nd > 4 {
		return nil, nil, fmt.Errorf("IDX has %d dimensions, want 1 to 4", nd)
	}
	raw := make([]byte, 4*nd)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, nil, fmt.Errorf("reading dimensions: %w", err)
	}
	dims = make([]int, nd)
	total := int64(1)
	for i := range dims {
		d := int64(binary.BigEndian.Uint32(raw[4*i:]))
		if d == 0 {
			return nil, nil, fmt.Errorf("dimension %d is zero", i)
		}
		if total > maxIDXBytes/d {
			return nil, nil, fmt.Errorf("dimensions announce more than %d bytes", int64(maxIDXBytes))
		}
		total *= d
		dims[i] = int(d)
	}
	data, err = readN(r, total)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %d data bytes: %w", total, err)
	}
	if err := expectEOF(r); err != nil {
		return nil, nil, fmt.Errorf("after %d data bytes: %w", total, err)
	}
	return dims, data, nil
}

// readIDXFile parses the IDX file at path, gzipped or not.
func readIDXFile(path string) ([]int, []byte, error) {
	rc, err := openMaybeGzip(path)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	dims, data, err := parseIDX(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return dims, data, nil
}

// findIDX returns the first existing file dir/base[.gz] for the given base
// names.
func findIDX(dir string, bases ...string) (string, error) {
	for _, b := range bases {
		for _, suf := range []string{".gz", ""} {
			p := filepath.Join(dir, b+suf)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("mnist: %s: no %s or %s.gz (FetchMNIST downloads them): %w",
		dir, bases[0], bases[0], fs.ErrNotExist)
}

// MNIST reads the MNIST training (train=true: train-images-idx3-ubyte and
// train-labels-idx1-ubyte) or test set (t10k-…) from dir. The files may be
// gzipped (detected from their content; a .gz suffix is looked for first) and
// may use the alternative names with a dot (train-images.idx3-ubyte). Images
// are 1x28x28, labels 0..9 named "0".."9".
func MNIST(dir string, train bool) (Dataset, error) {
	prefix := "t10k"
	if train {
		prefix = "train"
	}
	imgPath, err := findIDX(dir, prefix+"-images-idx3-ubyte", prefix+"-images.idx3-ubyte")
	if err != nil {
		return nil, err
	}
	lblPath, err := findIDX(dir, prefix+"-labels-idx1-ubyte", prefix+"-labels.idx1-ubyte")
	if err != nil {
		return nil, err
	}
	idims, pix, err := readIDXFile(imgPath)
	if err != nil {
		return nil, fmt.Errorf("mnist: %w", err)
	}
	ldims, lbl, err := readIDXFile(lblPath)
	if err != nil {
		return nil, fmt.Errorf("mnist: %w", err)
	}
	return mnistFromIDX(imgPath, lblPath, idims, pix, ldims, lbl)
}

func mnistFromIDX(imgPath, lblPath string, idims []int, pix []byte, ldims []int, lbl []byte) (*memDataset, error) {
	if len(idims) != 3 {
		return nil, fmt.Errorf("mnist: %s: images have %d dimensions %v, want 3 (n, 28, 28)", imgPath, len(idims), idims)
	}
	if idims[1] != 28 || idims[2] != 28 {
		return nil, fmt.Errorf("mnist: %s: images are %dx%d, want 28x28", imgPath, idims[1], idims[2])
	}
	if len(ldims) != 1 {
		return nil, fmt.Errorf("mnist: %s: labels have %d dimensions %v, want 1", lblPath, len(ldims), ldims)
	}
	if idims[0] != ldims[0] {
		return nil, fmt.Errorf("mnist: %s has %d images but %s has %d labels", imgPath, idims[0], lblPath, ldims[0])
	}
	labels := make([]int32, len(lbl))
	for i, l := range lbl {
		if l > 9 {
			return nil, fmt.Errorf("mnist: %s: label %d of image %d out of range [0,10)", lblPath, l, i)
		}
		labels[i] = int32(l)
	}
	names := make([]string, 10)
	for i := range names {
		names[i] = strconv.Itoa(i)
	}
	return &memDataset{name: imgPath, c: 1, h: 28, w: 28, pix: pix, labels: labels, classes: names}, nil
}
