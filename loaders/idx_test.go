package loaders

import (
	"bytes"
	"errors"
	"io/fs"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeMNIST writes a small MNIST split into dir and returns its pixels and
// labels.
func writeMNIST(t *testing.T, dir, prefix string, n int, gz bool) ([]byte, []byte) {
	pix := pattern(n*28*28, uint64(n))
	lbl := make([]byte, n)
	for i := range lbl {
		lbl[i] = byte((i * 7) % 10)
	}
	img := idxBytes([]int{n, 28, 28}, pix)
	lab := idxBytes([]int{n}, lbl)
	suf := ""
	if gz {
		img, lab, suf = gzipBytes(img), gzipBytes(lab), ".gz"
	}
	writeFile(t, filepath.Join(dir, prefix+"-images-idx3-ubyte"+suf), img)
	writeFile(t, filepath.Join(dir, prefix+"-labels-idx1-ubyte"+suf), lab)
	return pix, lbl
}

func TestMNISTRoundTrip(t *testing.T) {
	for _, gz := range []bool{false, true} {
		dir := t.TempDir()
		trPix, trLbl := writeMNIST(t, dir, "train", 12, gz)
		tePix, teLbl := writeMNIST(t, dir, "t10k", 5, gz)
		for _, train := range []bool{true, false} {
			pix, lbl := tePix, teLbl
			if train {
				pix, lbl = trPix, trLbl
			}
			ds, err := MNIST(dir, train)
			if err != nil {
				t.Fatalf("gz=%v train=%v: %v", gz, train, err)
			}
			if ds.Len() != len(lbl) || ds.NumClasses() != 10 {
				t.Fatalf("Len %d NumClasses %d, want %d 10", ds.Len(), ds.NumClasses(), len(lbl))
			}
			if c, h, w := ds.Shape(); c != 1 || h != 28 || w != 28 {
				t.Fatalf("Shape %d %d %d", c, h, w)
			}
			if got := ds.ClassNames(); got[0] != "0" || got[9] != "9" {
				t.Fatalf("ClassNames %v", got)
			}
			buf := make([]byte, 784)
			for i := range ds.Len() {
				if err := ds.Image(i, buf); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(buf, pix[i*784:(i+1)*784]) || ds.Label(i) != int(lbl[i]) {
					t.Fatalf("image %d differs", i)
				}
			}
			if err := ds.Image(ds.Len(), buf); err == nil {
				t.Fatal("Image out of range: no error")
			}
			if err := ds.Image(0, buf[:10]); err == nil {
				t.Fatal("Image with short dst: no error")
			}
		}
	}
}

func TestMNISTBadInput(t *testing.T) {
	good := func() ([]byte, []byte) {
		return idxBytes([]int{3, 28, 28}, pattern(3*784, 1)), idxBytes([]int{3}, []byte{1, 2, 3})
	}
	cases := []struct {
		name   string
		mutate func(img, lbl []byte) ([]byte, []byte)
		file   string // file the error must name
		want   string
	}{
		{"bad magic", func(img, lbl []byte) ([]byte, []byte) { img[0] = 0x12; return img, lbl }, "train-images", "magic"},
		{"not ubyte", func(img, lbl []byte) ([]byte, []byte) { img[2] = 0x0d; return img, lbl }, "train-images", "element type"},
		{"truncated images", func(img, lbl []byte) ([]byte, []byte) { return img[:len(img)-100], lbl }, "train-images", "truncated"},
		{"truncated header", func(img, lbl []byte) ([]byte, []byte) { return img[:9], lbl }, "train-images", "dimensions"},
		{"trailing bytes", func(img, lbl []byte) ([]byte, []byte) { return append(img, 0), lbl }, "train-images", "after"},
		{"label out of range", func(img, lbl []byte) ([]byte, []byte) { lbl[len(lbl)-1] = 10; return img, lbl }, "train-labels", "out of range"},
		{"count mismatch", func(img, lbl []byte) ([]byte, []byte) { return img, idxBytes([]int{2}, []byte{1, 2}) }, "train-labels", "labels"},
		{"wrong size", func(img, lbl []byte) ([]byte, []byte) { return idxBytes([]int{3, 27, 28}, pattern(3*27*28, 1)), lbl }, "train-images", "27x28"},
		{"labels 2-D", func(img, lbl []byte) ([]byte, []byte) { return img, idxBytes([]int{3, 1}, []byte{1, 2, 3}) }, "train-labels", "dimensions"},
	}
	for _, tc := range cases {
		for _, gz := range []bool{false, true} {
			dir := t.TempDir()
			img, lbl := tc.mutate(good())
			suf := ""
			if gz {
				img, lbl, suf = gzipBytes(img), gzipBytes(lbl), ".gz"
			}
			writeFile(t, filepath.Join(dir, "train-images-idx3-ubyte"+suf), img)
			writeFile(t, filepath.Join(dir, "train-labels-idx1-ubyte"+suf), lbl)
			_, err := MNIST(dir, true)
			if err == nil {
				t.Fatalf("%s (gz=%v): no error", tc.name, gz)
			}
			if !strings.Contains(err.Error(), tc.file) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s (gz=%v): error %q should name %s and say %q", tc.name, gz, err, tc.file, tc.want)
			}
		}
	}

	// A corrupt gzip stream (bad CRC) and a truncated one.
	dir := t.TempDir()
	img, lbl := good()
	z := gzipBytes(img)
	z[len(z)-6] ^= 0xff // CRC32
	writeFile(t, filepath.Join(dir, "train-images-idx3-ubyte.gz"), z)
	writeFile(t, filepath.Join(dir, "train-labels-idx1-ubyte.gz"), gzipBytes(lbl))
	if _, err := MNIST(dir, true); err == nil || !strings.Contains(err.Error(), "train-images-idx3-ubyte.gz") {
		t.Errorf("bad gzip checksum: %v", err)
	}
	writeFile(t, filepath.Join(dir, "train-images-idx3-ubyte.gz"), gzipBytes(img)[:200])
	if _, err := MNIST(dir, true); err == nil || !strings.Contains(err.Error(), "train-images-idx3-ubyte.gz") {
		t.Errorf("truncated gzip: %v", err)
	}

	// Missing files.
	_, err := MNIST(t.TempDir(), false)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "t10k-images-idx3-ubyte") || !IsMissing(err) {
		t.Errorf("missing files: %v", err)
	}
}

// TestMNISTReal checks the real MNIST files: counts, per-class counts, and
// the pixel mean and standard deviation of the training set.
func TestMNISTReal(t *testing.T) {
	dir := sharedData(t, "mnist")
	train, err := MNIST(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	test, err := MNIST(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 60000 || test.Len() != 10000 {
		t.Fatalf("counts %d/%d, want 60000/10000", train.Len(), test.Len())
	}
	wantTrain := []int{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949}
	wantTest := []int{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}
	if got := countClasses(train); !slices.Equal(got, wantTrain) {
		t.Errorf("train per class %v, want %v", got, wantTrain)
	}
	if got := countClasses(test); !slices.Equal(got, wantTest) {
		t.Errorf("test per class %v, want %v", got, wantTest)
	}
	st, err := ComputeStats(train)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(st.Mean[0]-0.1307) > 0.0005 || math.Abs(st.Std[0]-0.3081) > 0.0005 {
		t.Errorf("MNIST train mean %.4f std %.4f, want 0.1307 0.3081", st.Mean[0], st.Std[0])
	}
	t.Logf("MNIST train mean %.4f std %.4f", st.Mean[0], st.Std[0])
}

func TestParseIDXSeeds(t *testing.T) {
	dims, data, err := parseIDX(bytes.NewReader(idxBytes([]int{2, 3}, []byte{1, 2, 3, 4, 5, 6})))
	if err != nil || !slices.Equal(dims, []int{2, 3}) || !bytes.Equal(data, []byte{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("parseIDX: %v %v %v", dims, data, err)
	}
	// A header announcing 4 GiB in a tiny file must fail without allocating it.
	huge := idxBytes([]int{65536, 65535}, []byte{1})
	if _, _, err := parseIDX(bytes.NewReader(huge)); err == nil {
		t.Fatal("huge header: no error")
	}
	if _, _, err := parseIDX(bytes.NewReader(idxBytes([]int{0}, nil))); err == nil {
		t.Fatal("zero dimension: no error")
	}
}
