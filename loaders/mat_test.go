package loaders

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"
)

func svhnFixture(n int) ([][]byte, []int) {
	var imgs [][]byte
	var digits []int
	for i := range n {
		imgs = append(imgs, pattern(cifarPixels, uint64(100+i)))
		digits = append(digits, (i*3)%10)
	}
	return imgs, digits
}

func TestSVHNRoundTrip(t *testing.T) {
	imgs, digits := svhnFixture(13)
	for _, order := range []byteOrder{binary.LittleEndian, binary.BigEndian} {
		for _, compress := range []bool{false, true} {
			for _, yDouble := range []bool{false, true} {
				mw := matWriter{order: order}
				// An unrelated variable before X, as real files may have.
				other := matVar{name: "__other", class: mxDOUBLE, dims: []int{1, 2}, typ: miDOUBLE, data: make([]byte, 16)}
				vars := append([]matVar{other}, svhnVars(imgs, digits, yDouble, order)...)
				dir := t.TempDir()
				writeFile(t, filepath.Join(dir, "train_32x32.mat"), mw.file(vars, compress))
				writeFile(t, filepath.Join(dir, "test_32x32.mat"), mw.file(svhnVars(imgs[:2], digits[:2], yDouble, order), compress))
				what := order.String() + map[bool]string{true: " compressed", false: " plain"}[compress]
				ds, err := SVHN(dir, true)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if ds.Len() != len(imgs) || ds.NumClasses() != 10 {
					t.Fatalf("%s: Len %d", what, ds.Len())
				}
				buf := make([]byte, cifarPixels)
				for i := range imgs {
					if err := ds.Image(i, buf); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(buf, imgs[i]) || ds.Label(i) != digits[i] {
						t.Fatalf("%s: image %d differs (label %d want %d)", what, i, ds.Label(i), digits[i])
					}
				}
				te, err := Open("svhn", dir, false)
				if err != nil || te.Len() != 2 {
					t.Fatalf("%s: test split: %v", what, err)
				}
				// The file itself may be given.
				if ds, err := SVHN(filepath.Join(dir, "test_32x32.mat"), true); err != nil || ds.Len() != 2 {
					t.Fatalf("%s: file path: %v", what, err)
				}
			}
		}
	}
}

func TestSVHNBadInput(t *testing.T) {
	imgs, digits := svhnFixture(3)
	le := binary.LittleEndian
	mw := matWriter{order: le}
	good := func() []matVar { return svhnVars(imgs, digits, false, le) }
	cases := []struct {
		name string
		file func() []byte
		want string
	}{
		{"truncated", func() []byte { b := mw.file(good(), false); return b[:len(b)-50] }, "truncated"},
		{"truncated compressed", func() []byte { b := mw.file(good(), true); return b[:len(b)-5] }, "element"},
		{"bad header", func() []byte { b := mw.file(good(), false); copy(b, "HELLO"); return b }, "not a MATLAB 5.0 MAT-file"},
		{"v7.3", func() []byte { b := mw.file(good(), false); copy(b, "MATLAB 7.3 MAT-file"); return b }, "v7.3"},
		{"endian", func() []byte { b := mw.file(good(), false); copy(b[126:], "XX"); return b }, "endian"},
		{"missing y", func() []byte { return mw.file(good()[:1], true) }, "missing variable"},
		{"label 0", func() []byte { v := good(); v[1].data[2] = 0; return mw.file(v, false) }, "label 0 of image 2 out of range"},
		{"label 11", func() []byte { v := good(); v[1].data[0] = 11; return mw.file(v, true) }, "label 11 of image 0"},
		{"label count", func() []byte {
			v := good()
			v[1].dims = []int{2, 1}
			v[1].data = v[1].data[:2]
			return mw.file(v, false)
		}, "2 labels for 3 images"},
		{"image size", func() []byte {
			v := good()
			v[0].dims = []int{16, 64, 3, 3}
			return mw.file(v, false)
		}, "16x64"},
		{"X dims", func() []byte {
			v := good()
			v[0].dims = []int{32, 32, 9}
			return mw.file(v, false)
		}, "dimensions"},
		{"X class", func() []byte { v := good(); v[0].class = mxDOUBLE; return mw.file(v, false) }, "want uint8"},
		{"X size mismatch", func() []byte { v := good(); v[0].data = v[0].data[:100]; return mw.file(v, false) }, "real part has 100 bytes"},
		{"complex", func() []byte { v := good(); v[1].flags = matFlagComplex; return mw.file(v, false) }, "complex"},
		{"bad zlib", func() []byte {
			b := mw.file(good(), true)
			b[128+8+20] ^= 0xff
			return b
		}, "zlib"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		p := filepath.Join(dir, "train_32x32.mat")
		writeFile(t, p, c.file())
		_, err := SVHN(dir, true)
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming the file and saying %q", c.name, err, c.want)
		}
	}
	if _, err := SVHN(t.TempDir(), false); err == nil || !IsMissing(err) || !strings.Contains(err.Error(), "test_32x32.mat") {
		t.Errorf("missing file: %v", err)
	}
}
