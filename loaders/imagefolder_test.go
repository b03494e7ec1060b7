package loaders

import (
	"bytes"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

// folderFixture is a small class-folder data set: its files (relative
// paths) and, for each split, the expected classes, images and labels.
type folderFixture struct {
	files []tarEntry
	want  map[string][]folderWant // split -> images in expected order
}

type folderWant struct {
	rel   string
	label int
	pix   []uint8 // exact CHW for PNG, approximate for JPEG
	jpeg  bool
}

// makeFolder builds root/{train,test}/{cat,dog,emu}/ with PNG and JPEG
// images of 12x10, plus files that must be ignored.
func makeFolder(t *testing.T) folderFixture {
	fx := folderFixture{want: map[string][]folderWant{}}
	classes := []string{"cat", "dog", "emu"}
	seed := uint64(1)
	for _, split := range []string{"train", "test"} {
		for ci, c := range classes {
			n := 3
			if split == "test" {
				n = 2
			}
			for i := range n {
				seed++
				name := split + "/" + c + "/img" + string(rune('0'+i))
				var w folderWant
				if i%2 == 0 {
					img := testImage(12, 10, seed)
					name += ".png"
					w = folderWant{rel: name, label: ci, pix: chwOf(img)}
					fx.files = append(fx.files, tarEntry{name, pngBytes(t, img)})
				} else {
					img := smoothImage(12, 10, seed)
					name += ".JPG"
					w = folderWant{rel: name, label: ci, pix: chwOf(img), jpeg: true}
					fx.files = append(fx.files, tarEntry{name, jpegBytes(t, img)})
				}
				fx.want[split] = append(fx.want[split], w)
			}
		}
	}
	// Ignored: a non-image, a hidden AppleDouble file, a hidden folder.
	fx.files = append(fx.files,
		tarEntry{"train/cat/notes.txt", []byte("hello")},
		tarEntry{"train/cat/._img0.png", []byte("garbage")},
		tarEntry{"train/.cache/x.png", []byte("garbage")},
	)
	// Reverse the order so that the readers must sort.
	slices.Reverse(fx.files)
	return fx
}

func (fx folderFixture) writeDir(t *testing.T, root string) {
	for _, f := range fx.files {
		writeFile(t, filepath.Join(root, filepath.FromSlash(f.name)), f.data)
	}
}

func (fx folderFixture) tar(t *testing.T, prefix string, gz bool, extra ...tarEntry) []byte {
	var ents []tarEntry
	for _, f := range fx.files {
		ents = append(ents, tarEntry{prefix + f.name, f.data})
	}
	return tarBytes(t, append(ents, extra...), gz)
}

func checkFolder(t *testing.T, what string, ds Dataset, want []folderWant) {
	t.Helper()
	if ds.Len() != len(want) {
		t.Fatalf("%s: Len %d, want %d", what, ds.Len(), len(want))
	}
	if got := ds.ClassNames(); !slices.Equal(got, []string{"cat", "dog", "emu"}) {
		t.Fatalf("%s: classes %v", what, got)
	}
	if c, h, w := ds.Shape(); c != 3 || h != 10 || w != 12 {
		t.Fatalf("%s: shape %d %d %d", what, c, h, w)
	}
	buf := make([]uint8, 3*10*12)
	for i, w := range want {
		if err := ds.Image(i, buf); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ds.Label(i) != w.label {
			t.Fatalf("%s: image %d (%s): label %d, want %d", what, i, w.rel, ds.Label(i), w.label)
		}
		if !w.jpeg {
			if !bytes.Equal(buf, w.pix) {
				t.Fatalf("%s: image %d (%s): PNG pixels differ", what, i, w.rel)
			}
			continue
		}
		if d := meanAbsDiff(buf, w.pix); d > 6 {
			t.Fatalf("%s: image %d (%s): JPEG mean abs difference %.2f", what, i, w.rel, d)
		}
	}
}

func meanAbsDiff(a, b []uint8) float64 {
	s := 0.0
	for i := range a {
		s += math.Abs(float64(a[i]) - float64(b[i]))
	}
	return s / float64(len(a))
}

func TestImageFolderRoundTrip(t *testing.T) {
	fx := makeFolder(t)
	root := t.TempDir()
	fx.writeDir(t, filepath.Join(root, "plain"))
	fx.writeDir(t, filepath.Join(root, "wrapped", "top"))
	writeFile(t, filepath.Join(root, "a.tar"), fx.tar(t, "", false))
	writeFile(t, filepath.Join(root, "b.tar.gz"), fx.tar(t, "data/", true, tarEntry{name: "data/"}))
	writeFile(t, filepath.Join(root, "c.tar"), fx.tar(t, "./data/", false))
	for _, src := range []string{"plain", "wrapped", "a.tar", "b.tar.gz", "c.tar"} {
		for _, split := range []string{"train", "test"} {
			p := filepath.Join(root, src)
			ds, err := ImageFolder(p, split)
			if err != nil {
				t.Fatalf("%s %s: %v", src, split, err)
			}
			checkFolder(t, src+" "+split, ds, fx.want[split])
			pre, err := ImageFolder(p, split, Preload())
			if err != nil {
				t.Fatalf("%s %s preload: %v", src, split, err)
			}
			if _, ok := pre.(*memDataset); !ok {
				t.Fatalf("Preload gave %T", pre)
			}
			checkFolder(t, src+" "+split+" preloaded", pre, fx.want[split])
		}
	}
	// Open picks "test" for the evaluation split when there is no "val".
	ds, err := Open("imagefolder", filepath.Join(root, "b.tar.gz"), false)
	if err != nil {
		t.Fatal(err)
	}
	checkFolder(t, "Open test", ds, fx.want["test"])
}

func TestImageFolderResizeAndGray(t *testing.T) {
	root := t.TempDir()
	solid := func(w, h int, c color.NRGBA) *image.NRGBA {
		img := image.NewNRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				img.SetNRGBA(x, y, c)
			}
		}
		return img
	}
	red := color.NRGBA{200, 10, 30, 255}
	writeFile(t, filepath.Join(root, "train", "a", "wide.png"), pngBytes(t, solid(40, 20, red)))
	writeFile(t, filepath.Join(root, "train", "a", "tall.jpg"), jpegBytes(t, solid(20, 50, red)))
	// Left half black, right half white: the centre square keeps both.
	half := solid(40, 20, color.NRGBA{0, 0, 0, 255})
	for y := range 20 {
		for x := 20; x < 40; x++ {
			half.SetNRGBA(x, y, color.NRGBA{255, 255, 255, 255})
		}
	}
	writeFile(t, filepath.Join(root, "train", "b", "half.png"), pngBytes(t, half))

	for _, opt := range []FolderOption{Resize(8, 6), ResizeShorter(10)} {
		ds, err := ImageFolder(root, "train", opt)
		if err != nil {
			t.Fatal(err)
		}
		c, h, w := ds.Shape()
		buf := make([]uint8, c*h*w)
		for i := range 2 { // the red images
			if err := ds.Image(i, buf); err != nil {
				t.Fatal(err)
			}
			for k, v := range buf {
				want := []uint8{200, 10, 30}[k/(h*w)]
				if d := int(v) - int(want); d < -4 || d > 4 {
					t.Fatalf("resized image %d: channel %d = %d, want about %d", i, k/(h*w), v, want)
				}
			}
		}
		if err := ds.Image(2, buf); err != nil {
			t.Fatal(err)
		}
		if buf[0] > 10 || buf[w-1] < 245 {
			t.Fatalf("half image after %dx%d: left %d right %d", h, w, buf[0], buf[w-1])
		}
	}
	ds, err := ImageFolder(root, "train", ResizeShorter(10), Grayscale())
	if err != nil {
		t.Fatal(err)
	}
	if c, h, w := ds.Shape(); c != 1 || h != 10 || w != 10 {
		t.Fatalf("gray shape %d %d %d", c, h, w)
	}
	buf := make([]uint8, 100)
	if err := ds.Image(0, buf); err != nil {
		t.Fatal(err)
	}
	if want := luma(200, 10, 30); math.Abs(float64(buf[0])-float64(want)) > 4 {
		t.Fatalf("gray value %d, want about %d", buf[0], want)
	}
	// Without a resize, images of different sizes are an error.
	if _, err := ImageFolder(root, "train", Preload()); err == nil || !strings.Contains(err.Error(), "want") {
		t.Fatalf("mixed sizes: %v", err)
	}
}

func TestImageFolderBadInput(t *testing.T) {
	good := pngBytes(t, testImage(4, 4, 1))
	cases := []struct {
		name  string
		files []tarEntry
		opts  []FolderOption
		want  string // in the error of opening (or, lazily, of Image)
	}{
		{"empty class", []tarEntry{{"train/a/x.png", good}, {"train/b/", nil}}, nil, `class folder "b" has no images`},
		{"only non-images", []tarEntry{{"train/a/x.png", good}, {"train/b/readme.txt", []byte("x")}}, nil, `class folder "b" has no images`},
		{"missing split", []tarEntry{{"test/a/x.png", good}}, nil, "no split folder train"},
		{"wrong size", []tarEntry{{"train/a/x.png", good}, {"train/a/y.png", pngBytes(t, testImage(5, 4, 2))}}, []FolderOption{Preload()}, "y.png: image is 5x4, want 4x4"},
		{"corrupt", []tarEntry{{"train/a/x.png", good}, {"train/a/y.jpg", []byte("not a jpeg")}}, []FolderOption{Preload()}, "y.jpg: decoding"},
		{"truncated png", []tarEntry{{"train/a/x.png", good}, {"train/a/y.png", good[:len(good)-20]}}, []FolderOption{Preload()}, "y.png"},
		{"bad option", []tarEntry{{"train/a/x.png", good}}, []FolderOption{Resize(0, 3)}, "Resize(0, 3)"},
	}
	for _, c := range cases {
		for _, form := range []string{"dir", "tar", "tar.gz"} {
			if form == "dir" && strings.HasSuffix(c.files[len(c.files)-1].name, "/") {
				// An empty folder, written as such.
				root := t.TempDir()
				for _, f := range c.files {
					if strings.HasSuffix(f.name, "/") {
						os.MkdirAll(filepath.Join(root, f.name), 0o755)
					} else {
						writeFile(t, filepath.Join(root, f.name), f.data)
					}
				}
				checkFolderErr(t, c.name+" dir", root, c.opts, c.want)
				continue
			}
			root := t.TempDir()
			p := root
			switch form {
			case "dir":
				for _, f := range c.files {
					writeFile(t, filepath.Join(root, f.name), f.data)
				}
			case "tar", "tar.gz":
				p = filepath.Join(root, "x."+form)
				writeFile(t, p, tarBytes(t, c.files, form == "tar.gz"))
			}
			checkFolderErr(t, c.name+" "+form, p, c.opts, c.want)
		}
	}
	// Lazily decoded folders report a wrong size when the image is read.
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "train", "a", "x.png"), good)
	writeFile(t, filepath.Join(root, "train", "a", "y.png"), pngBytes(t, testImage(5, 4, 2)))
	ds, err := ImageFolder(root, "train")
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.Image(1, make([]uint8, 48)); err == nil || !strings.Contains(err.Error(), filepath.Join(root, "train", "a", "y.png")) {
		t.Fatalf("lazy wrong size: %v", err)
	}
	// A truncated uncompressed archive.
	a := filepath.Join(t.TempDir(), "t.tar")
	full := tarBytes(t, []tarEntry{{"train/a/x.png", good}, {"train/a/y.png", good}}, false)
	writeFile(t, a, full[:1024+300])
	if _, err := ImageFolder(a, "train"); err == nil || !strings.Contains(err.Error(), a) {
		t.Fatalf("truncated tar: %v", err)
	}
	if _, err := ImageFolder(root, "../x"); err == nil {
		t.Fatal("bad split name: no error")
	}
}

func checkFolderErr(t *testing.T, what, p string, opts []FolderOption, want string) {
	t.Helper()
	ds, err := ImageFolder(p, "train", opts...)
	if err == nil {
		c, h, w := ds.Shape()
		buf := make([]uint8, c*h*w)
		for i := range ds.Len() {
			if err = ds.Image(i, buf); err != nil {
				break
			}
		}
	}
	if err == nil {
		t.Errorf("%s: no error", what)
		return
	}
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), p) {
		t.Errorf("%s: error %q should name %s and say %q", what, err, p, want)
	}
}

// TestCIFAR10JPEGReal checks the real JPEG copy of CIFAR-10: counts,
// per-class counts and the channel means of the training set. Decoding all
// 60,000 images takes about a second on two cores.
func TestCIFAR10JPEGReal(t *testing.T) {
	p := sharedData(t, "cifar10-jpeg.tar.gz")
	train, err := Open("cifar10-jpeg", p, true)
	if err != nil {
		t.Fatal(err)
	}
	test, err := Open("cifar10-jpeg", filepath.Dir(p), false)
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 50000 || test.Len() != 10000 {
		t.Fatalf("counts %d/%d, want 50000/10000", train.Len(), test.Len())
	}
	if got := train.ClassNames(); !slices.Equal(got, cifar10Names) {
		t.Fatalf("classes %v, want %v", got, cifar10Names)
	}
	for i, n := range countClasses(train) {
		if n != 5000 {
			t.Errorf("train class %d: %d images, want 5000", i, n)
		}
	}
	for i, n := range countClasses(test) {
		if n != 1000 {
			t.Errorf("test class %d: %d images, want 1000", i, n)
		}
	}
	st, err := ComputeStats(train)
	if err != nil {
		t.Fatal(err)
	}
	for ch, want := range []float64{0.4913, 0.4821, 0.4465} {
		if math.Abs(st.Mean[ch]-want) > 0.005 {
			t.Errorf("channel %d mean %.4f, want %.4f ± 0.005", ch, st.Mean[ch], want)
		}
		if math.Abs(st.Std[ch]-cifar10Std[ch]) > 0.01 {
			t.Errorf("channel %d std %.4f, want about %.4f", ch, st.Std[ch], cifar10Std[ch])
		}
	}
	t.Logf("cifar10-jpeg train mean %.4f std %.4f", st.Mean, st.Std)
}

// TestOpenImageNet opens a tiny ImageNet-like folder (images of several
// sizes, splits train and val) and runs the ImageNet presets through a
// Batcher.
func TestOpenImageNet(t *testing.T) {
	root := t.TempDir()
	sizes := [][2]int{{300, 200}, {180, 260}, {256, 256}}
	for si, split := range []string{"train", "val"} {
		for ci, class := range []string{"n01440764", "n01443537"} {
			for k, sz := range sizes {
				img := smoothImage(sz[0], sz[1], uint64(10*si+3*ci+k))
				writeFile(t, filepath.Join(root, split, class, "img"+string(rune('a'+k))+".JPEG"), jpegBytes(t, img))
			}
		}
	}
	for _, train := range []bool{true, false} {
		ds, err := Open("imagenet", root, train)
		if err != nil {
			t.Fatal(err)
		}
		if c, h, w := ds.Shape(); ds.Len() != 6 || c != 3 || h != 256 || w != 256 {
			t.Fatalf("Len %d shape %d %d %d", ds.Len(), c, h, w)
		}
		norm, aug := Preset("imagenet", train)
		b, err := NewBatcher(ds, BatcherConfig{Batch: 4, Shuffle: train, Normalize: norm, Augment: aug})
		if err != nil {
			t.Fatal(err)
		}
		if c, h, w := b.OutShape(); c != 3 || h != 224 || w != 224 {
			t.Fatalf("OutShape %d %d %d", c, h, w)
		}
		x, y := b.NewTensors(tensor.Float32)
		it := b.Epoch(0)
		total := 0
		for {
			n, ok, err := it.Next(x, y)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			total += n
		}
		if total != 6 {
			t.Fatalf("%d images in an epoch", total)
		}
	}
	// The generic imagefolder does not resize: mixed sizes are an error.
	ds, err := Open("imagefolder", root, false)
	if err == nil {
		err = ds.Image(1, make([]uint8, 3*200*300))
	}
	if err == nil || !strings.Contains(err.Error(), "want") {
		t.Fatalf("imagefolder with mixed sizes: %v", err)
	}
}
