package loaders

import (
	"bytes"
	"errors"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// cifarFixture is a small CIFAR data set written in the official layout.
type cifarFixture struct {
	files  map[string][]byte // base name -> contents
	pix    map[bool][][]byte // train -> images
	labels map[bool][]int
}

func makeCIFAR10(perFile int, meta bool) cifarFixture {
	fx := cifarFixture{files: map[string][]byte{}, pix: map[bool][][]byte{}, labels: map[bool][]int{}}
	sp := cifar10Spec()
	add := func(name string, train bool, seed int) {
		var lb, px [][]byte
		for i := range perFile {
			l := (i*3 + seed) % 10
			p := pattern(cifarPixels, uint64(seed*1000+i))
			lb, px = append(lb, []byte{byte(l)}), append(px, p)
			fx.pix[train] = append(fx.pix[train], p)
			fx.labels[train] = append(fx.labels[train], l)
		}
		fx.files[name] = cifarRecords(lb, px)
	}
	for i, f := range sp.train {
		add(f, true, i+1)
	}
	add(sp.test[0], false, 9)
	if meta {
		fx.files["batches.meta.txt"] = []byte("a0\na1\na2\na3\na4\na5\na6\na7\na8\na9\n\n")
	}
	return fx
}

func makeCIFAR100(n int, meta bool) cifarFixture {
	fx := cifarFixture{files: map[string][]byte{}, pix: map[bool][][]byte{}, labels: map[bool][]int{}}
	for _, train := range []bool{true, false} {
		var lb, px [][]byte
		for i := range n {
			fine := (i*37 + 11) % 100
			p := pattern(cifarPixels, uint64(i)+map[bool]uint64{true: 0, false: 1 << 20}[train])
			lb, px = append(lb, []byte{byte(fine / 5), byte(fine)}), append(px, p)
			fx.pix[train] = append(fx.pix[train], p)
			fx.labels[train] = append(fx.labels[train], fine)
		}
		name := "test.bin"
		if train {
			name = "train.bin"
		}
		fx.files[name] = cifarRecords(lb, px)
	}
	if meta {
		var b strings.Builder
		for i := range 100 {
			b.WriteString("c" + string(rune('A'+i/26)) + string(rune('a'+i%26)) + "\n")
		}
		fx.files["fine_label_names.txt"] = []byte(b.String())
		fx.files["coarse_label_names.txt"] = []byte("x\n")
	}
	return fx
}

func (fx cifarFixture) writeDir(t *testing.T, dir string) {
	for name, b := range fx.files {
		writeFile(t, filepath.Join(dir, name), b)
	}
}

func (fx cifarFixture) tar(t *testing.T, folder string, gz bool) []byte {
	ents := []tarEntry{{name: folder + "/"}}
	for _, name := range slices.Sorted(maps.Keys(fx.files)) {
		ents = append(ents, tarEntry{folder + "/" + name, fx.files[name]})
	}
	return tarBytes(t, ents, gz)
}

func checkCIFAR(t *testing.T, what string, ds Dataset, fx cifarFixture, train bool, classes int) {
	t.Helper()
	pix, labels := fx.pix[train], fx.labels[train]
	if ds.Len() != len(labels) || ds.NumClasses() != classes {
		t.Fatalf("%s: Len %d NumClasses %d, want %d %d", what, ds.Len(), ds.NumClasses(), len(labels), classes)
	}
	if c, h, w := ds.Shape(); c != 3 || h != 32 || w != 32 {
		t.Fatalf("%s: shape %d %d %d", what, c, h, w)
	}
	buf := make([]byte, cifarPixels)
	for i := range labels {
		if err := ds.Image(i, buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, pix[i]) || ds.Label(i) != labels[i] {
			t.Fatalf("%s: image %d differs (label %d, want %d)", what, i, ds.Label(i), labels[i])
		}
	}
}

func TestCIFAR10RoundTrip(t *testing.T) {
	fx := makeCIFAR10(4, false)
	root := t.TempDir()
	fx.writeDir(t, filepath.Join(root, "flat"))
	fx.writeDir(t, filepath.Join(root, "nested", "cifar-10-batches-bin"))
	writeFile(t, filepath.Join(root, "archive", "cifar-10-binary.tar.gz"), fx.tar(t, "cifar-10-batches-bin", true))
	writeFile(t, filepath.Join(root, "plain.tar"), fx.tar(t, "cifar-10-batches-bin", false))
	sources := []string{
		filepath.Join(root, "flat"),
		filepath.Join(root, "nested"),
		filepath.Join(root, "archive"),
		filepath.Join(root, "archive", "cifar-10-binary.tar.gz"),
		filepath.Join(root, "plain.tar"),
	}
	for _, src := range sources {
		for _, train := range []bool{true, false} {
			ds, err := CIFAR10(src, train)
			if err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			checkCIFAR(t, src, ds, fx, train, 10)
			if got := ds.ClassNames(); !slices.Equal(got, cifar10Names) {
				t.Fatalf("class names %v", got)
			}
		}
	}
	// Class names from batches.meta.txt.
	fx = makeCIFAR10(2, true)
	dir := t.TempDir()
	fx.writeDir(t, dir)
	ds, err := CIFAR10(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := ds.ClassNames(); got[0] != "a0" || got[9] != "a9" || len(got) != 10 {
		t.Fatalf("class names from meta: %v", got)
	}
	ds, err = Open("cifar10", dir, false)
	if err != nil || ds.Len() != 2 {
		t.Fatalf("Open cifar10: %v", err)
	}
}

func TestCIFAR100RoundTrip(t *testing.T) {
	if len(cifar100Names) != 100 || !slices.IsSorted(cifar100Names) {
		t.Fatalf("built-in CIFAR-100 names: %d, sorted %v", len(cifar100Names), slices.IsSorted(cifar100Names))
	}
	fx := makeCIFAR100(150, false)
	root := t.TempDir()
	fx.writeDir(t, filepath.Join(root, "cifar-100-binary"))
	writeFile(t, filepath.Join(root, "cifar-100-binary.tar.gz"), fx.tar(t, "cifar-100-binary", true))
	for _, src := range []string{root, filepath.Join(root, "cifar-100-binary"), filepath.Join(root, "cifar-100-binary.tar.gz")} {
		for _, train := range []bool{true, false} {
			ds, err := CIFAR100(src, train)
			if err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			checkCIFAR(t, src, ds, fx, train, 100)
			if ds.ClassNames()[99] != "worm" {
				t.Fatalf("class names %v", ds.ClassNames())
			}
		}
	}
	fx = makeCIFAR100(3, true)
	dir := t.TempDir()
	fx.writeDir(t, dir)
	ds, err := Open("cifar100", dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := ds.ClassNames(); got[0] != "cAa" || got[99] != "cDv" {
		t.Fatalf("fine names from meta: %v", got)
	}
}

func TestCIFARBadInput(t *testing.T) {
	type tc struct {
		name   string
		mutate func(fx cifarFixture)
		file   string
		want   string
	}
	c10 := []tc{
		{"truncated", func(fx cifarFixture) { f := fx.files["data_batch_3.bin"]; fx.files["data_batch_3.bin"] = f[:len(f)-1] }, "data_batch_3.bin", "not a multiple"},
		{"empty", func(fx cifarFixture) { fx.files["data_batch_2.bin"] = nil }, "data_batch_2.bin", "empty"},
		{"label", func(fx cifarFixture) { fx.files["data_batch_4.bin"][3073] = 10 }, "data_batch_4.bin", "record 1: label 10 out of range"},
		{"missing", func(fx cifarFixture) { delete(fx.files, "data_batch_5.bin") }, "data_batch_5.bin", ""},
		{"names", func(fx cifarFixture) { fx.files["batches.meta.txt"] = []byte("a\nb\n") }, "batches.meta.txt", "2 class names"},
	}
	for _, c := range c10 {
		for _, form := range []string{"dir", "tar.gz"} {
			fx := makeCIFAR10(2, false)
			c.mutate(fx)
			root := t.TempDir()
			p := root
			if form == "dir" {
				fx.writeDir(t, root)
			} else {
				p = filepath.Join(root, "cifar-10-binary.tar.gz")
				writeFile(t, p, fx.tar(t, "cifar-10-batches-bin", true))
			}
			_, err := CIFAR10(p, true)
			if err == nil || !strings.Contains(err.Error(), c.file) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("cifar10 %s (%s): error %v, want one naming %s and saying %q", c.name, form, err, c.file, c.want)
			}
		}
	}
	c100 := []tc{
		{"fine label", func(fx cifarFixture) { fx.files["train.bin"][1] = 100 }, "train.bin", "label 100 out of range"},
		{"coarse label", func(fx cifarFixture) { fx.files["train.bin"][3074] = 20 }, "train.bin", "coarse label 20"},
		{"cifar10 record size", func(fx cifarFixture) { fx.files["train.bin"] = fx.files["train.bin"][:3073*2] }, "train.bin", "3074-byte record"},
	}
	for _, c := range c100 {
		fx := makeCIFAR100(3, false)
		c.mutate(fx)
		dir := t.TempDir()
		fx.writeDir(t, dir)
		_, err := CIFAR100(dir, true)
		if err == nil || !strings.Contains(err.Error(), c.file) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("cifar100 %s: error %v", c.name, err)
		}
	}
	// Nothing there, and a truncated archive.
	if _, err := CIFAR10(t.TempDir(), false); err == nil || !IsMissing(err) || !strings.Contains(err.Error(), "test_batch.bin") {
		t.Errorf("empty folder: %v", err)
	}
	fx := makeCIFAR10(2, false)
	a := filepath.Join(t.TempDir(), "c.tar.gz")
	full := fx.tar(t, "cifar-10-batches-bin", true)
	writeFile(t, a, full[:len(full)/2])
	if _, err := CIFAR10(a, true); err == nil || !strings.Contains(err.Error(), a) {
		t.Errorf("truncated archive: %v", err)
	}
	if _, err := CIFAR10(filepath.Join(t.TempDir(), "nope"), true); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing path: %v", err)
	}
}
