package loaders

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// cifarSpec describes one of the two CIFAR binary versions.
type cifarSpec struct {
	name       string   // for messages: cifar10, cifar100
	dirName    string   // folder inside the official archive
	tarName    string   // official archive name
	train      []string // training files
	test       []string // test files
	labelBytes int      // label bytes before the 3072 pixel bytes
	labelIdx   int      // which label byte is used
	classes    int      // classes of the used label
	coarse     int      // classes of the other label byte (CIFAR-100), 0 if none
	meta       string   // file with class names, one a line
	names      []string // default class names
}

var cifar10Names = []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}

var cifar100Names = []string{
	"apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
	"bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
	"chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
	"dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
	"lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
	"mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
	"plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
	"rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
	"squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
	"train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
}

func cifar10Spec() *cifarSpec {
	return &cifarSpec{
		name: "cifar10", dirName: "cifar-10-batches-bin", tarName: "cifar-10-binary.tar.gz",
		train:      []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"},
		test:       []string{"test_batch.bin"},
		labelBytes: 1, labelIdx: 0, classes: 10,
		meta: "batches.meta.txt", names: cifar10Names,
	}
}

func cifar100Spec() *cifarSpec {
	return &cifarSpec{
		name: "cifar100", dirName: "cifar-100-binary", tarName: "cifar-100-binary.tar.gz",
		train:      []string{"train.bin"},
		test:       []string{"test.bin"},
		labelBytes: 2, labelIdx: 1, classes: 100, coarse: 20,
		meta: "fine_label_names.txt", names: cifar100Names,
	}
}

const cifarPixels = 3 * 32 * 32

// parseCIFAR decodes the records of one CIFAR binary file: labelBytes label
// bytes followed by 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each
// row-major 32x32, i.e. already CHW). The label at labelIdx must be below
// classes; with two label bytes the other one (CIFAR-100's coarse label) must
// be below coarse.
func parseCIFAR(data []byte, labelBytes, labelIdx, classes, coarse int) (pix []byte, labels []int32, err error) {
	rec := labelBytes + cifarPixels
	if len(data) == 0 {
		return nil, nil, errors.New("empty file")
	}
	if len(data)%rec != 0 {
		return nil, nil, fmt.Errorf("size %d is not a multiple of the %d-byte record (truncated or not a CIFAR binary file)", len(data), rec)
	}
	n := len(data) / rec
	pix = make([]byte, n*cifarPixels)
	labels = make([]int32, n)
	for i := range n {
		r := data[i*rec : (i+1)*rec]
		l := int(r[labelIdx])
		if l >= classes {
			return nil, nil, fmt.Errorf("record %d: label %d out of range [0,%d)", i, l, classes)
		}
		if labelBytes == 2 {
			if o := int(r[1-labelIdx]); o >= coarse {
				return nil, nil, fmt.Errorf("record %d: coarse label %d out of range [0,%d)", i, o, coarse)
			}
		}
		labels[i] = int32(l)
		copy(pix[i*cifarPixels:], r[labelBytes:])
	}
	return pix, labels, nil
}

// parseNames reads class names, one a line, ignoring blank lines.
func parseNames(b []byte) []string {
	var names []string
	for line := range strings.Lines(string(b)) {
		if s := strings.TrimSpace(line); s != "" {
			names = append(names, s)
		}
	}
	return names
}

// CIFAR10 reads the binary version of CIFAR-10: the training set
// (data_batch_1.bin … data_batch_5.bin) or the test set (test_batch.bin).
// pathOrDir is a directory holding those files, a directory holding the
// folder cifar-10-batches-bin or the archive cifar-10-binary.tar.gz, or the
// path of the official archive itself (.tar.gz or .tar). Class names come from
// batches.meta.txt when present. Images are 3x32x32.
func CIFAR10(pathOrDir string, train bool) (Dataset, error) {
	return loadCIFAR(cifar10Spec(), pathOrDir, train)
}

// CIFAR100 reads the binary version of CIFAR-100 (train.bin or test.bin),
// using the fine labels (100 classes). pathOrDir is as for [CIFAR10], with
// the folder cifar-100-binary and the archive cifar-100-binary.tar.gz. Class
// names come from fine_label_names.txt when present.
func CIFAR100(pathOrDir string, train bool) (Dataset, error) {
	return loadCIFAR(cifar100Spec(), pathOrDir, train)
}

func loadCIFAR(sp *cifarSpec, p string, train bool) (Dataset, error) {
	files := sp.test
	if train {
		files = sp.train
	}
	contents, src, err := sp.locate(p, files)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sp.name, err)
	}
	ds := &memDataset{name: src, c: 3, h: 32, w: 32}
	for _, f := range files {
		pix, labels, err := parseCIFAR(contents[f], sp.labelBytes, sp.labelIdx, sp.classes, sp.coarse)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", sp.name, srcName(src, f), err)
		}
		if len(files) == 1 {
			ds.pix, ds.labels = pix, labels
		} else {
			ds.pix = append(ds.pix, pix...)
			ds.labels = append(ds.labels, labels...)
		}
	}
	ds.classes = slices.Clone(sp.names)
	if meta, ok := contents[sp.meta]; ok {
		names := parseNames(meta)
		if len(names) != sp.classes {
			return nil, fmt.Errorf("%s: %s: %d class names, want %d", sp.name, srcName(src, sp.meta), len(names), sp.classes)
		}
		ds.classes = names
	}
	return ds, nil
}

// srcName names file f inside src (a directory or an archive).
func srcName(src, f string) string {
	if st, err := os.Stat(src); err == nil && st.IsDir() {
		return filepath.Join(src, f)
	}
	return src + ":" + f
}

// locate finds the data files and reads them (plus the optional class-name
// file) into memory; it returns them by base name, and the directory or
// archive they came from.
func (sp *cifarSpec) locate(p string, files []string) (map[string][]byte, string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, "", err
	}
	if !st.IsDir() {
		m, err := sp.readArchive(p, files)
		return m, p, err
	}
	dir := p
	if !isFile(filepath.Join(dir, files[0])) {
		switch {
		case isDir(filepath.Join(p, sp.dirName)):
			dir = filepath.Join(p, sp.dirName)
		case isFile(filepath.Join(p, sp.tarName)):
			a := filepath.Join(p, sp.tarName)
			m, err := sp.readArchive(a, files)
			return m, a, err
		default:
			return nil, "", fmt.Errorf("%s: no %s (nor folder %s or archive %s): %w",
				p, files[0], sp.dirName, sp.tarName, fs.ErrNotExist)
		}
	}
	m := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return nil, "", err
		}
		m[f] = b
	}
	if b, err := os.ReadFile(filepath.Join(dir, sp.meta)); err == nil {
		m[sp.meta] = b
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, "", err
	}
	return m, dir, nil
}

// readArchive reads the wanted files (matched by base name) and the
// class-name file from a tar or tar.gz archive.
func (sp *cifarSpec) readArchive(a string, files []string) (map[string][]byte, error) {
	rc, err := openMaybeGzip(a)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	want := map[string]bool{sp.meta: true}
	for _, f := range files {
		want[f] = true
	}
	m := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: reading archive: %w", a, err)
		}
		if !h.FileInfo().Mode().IsRegular() {
			continue
		}
		base := path.Base(h.Name)
		if !want[base] {
			continue
		}
		if _, dup := m[base]; dup {
			return nil, fmt.Errorf("%s: archive has more than one %s", a, base)
		}
		b, err := readN(tr, h.Size)
		if err != nil {
			return nil, fmt.Errorf("%s: reading %s: %w", a, h.Name, err)
		}
		m[base] = b
	}
	if err := finishArchive(rc, a); err != nil {
		return nil, err
	}
	for _, f := range files {
		if _, ok := m[f]; !ok {
			return nil, fmt.Errorf("%s: archive has no %s: %w", a, f, fs.ErrNotExist)
		}
	}
	return m, nil
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
