package loaders

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"image"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// FolderOption configures [ImageFolder].
type FolderOption func(*folderConfig)

type folderConfig struct {
	resizeH, resizeW int  // exact resize
	shorter          int  // shorter side to this size, then centre square
	channels         int  // 1 or 3
	preload          bool // decode everything when opening
	err              error
}

// Resize makes ImageFolder resize every image to exactly h x w (bilinear,
// antialiased when shrinking), ignoring its aspect ratio.
func Resize(h, w int) FolderOption {
	return func(c *folderConfig) {
		if h <= 0 || w <= 0 {
			c.err = fmt.Errorf("Resize(%d, %d): sizes must be positive", h, w)
		}
		c.resizeH, c.resizeW, c.shorter = h, w, 0
	}
}

// ResizeShorter makes ImageFolder resize every image so that its shorter
// side is size (bilinear, antialiased when shrinking), and keep the central
// size x size square. ResizeShorter(256) followed by the evaluation preset's
// centre crop of 224 is the usual ImageNet evaluation transform.
func ResizeShorter(size int) FolderOption {
	return func(c *folderConfig) {
		if size <= 0 {
			c.err = fmt.Errorf("ResizeShorter(%d): size must be positive", size)
		}
		c.shorter, c.resizeH, c.resizeW = size, 0, 0
	}
}

// Grayscale makes ImageFolder produce one channel (ITU-R 601 luma) instead
// of three (RGB).
func Grayscale() FolderOption { return func(c *folderConfig) { c.channels = 1 } }

// Preload makes ImageFolder decode every image when it opens the folder
// (in parallel) and keep the pixels in memory, instead of decoding on each
// Image call. Meant for small images such as CIFAR.
func Preload() FolderOption { return func(c *folderConfig) { c.preload = true } }

// isImageName reports whether a file name has an image extension this
// package decodes.
func isImageName(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".jpg", ".jpeg", ".png":
		return true
	}
	return false
}

// hidden reports whether any component of a slash-separated path starts
// with a dot (".DS_Store", "._x.jpg" of macOS archives, ".git").
func hidden(p string) bool {
	for part := range strings.SplitSeq(p, "/") {
		if strings.HasPrefix(part, ".") && part != "." && part != ".." {
			return true
		}
	}
	return false
}

// errMissingSplit is wrapped by the error of a folder or archive without the
// requested split.
var errMissingSplit = errors.New("missing split")

// blobSource returns the encoded bytes of image i.
type blobSource interface {
	read(i int) ([]byte, error)
}

type memBlobs [][]byte

func (m memBlobs) read(i int) ([]byte, error) { return m[i], nil }

type fileBlobs []string

func (f fileBlobs) read(i int) ([]byte, error) { return os.ReadFile(f[i]) }

// tarBlobs reads entries of an uncompressed tar file at known offsets.
type tarBlobs struct {
	f    *os.File
	off  []int64
	size []int64
}

func (t *tarBlobs) read(i int) ([]byte, error) {
	b := make([]byte, t.size[i])
	_, err := t.f.ReadAt(b, t.off[i])
	if err == io.EOF && len(b) == 0 {
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading archive: %w", err)
	}
	return b, nil
}

// folderDataset decodes the images of a class-folder layout on demand.
type folderDataset struct {
	src     string   // folder or archive
	files   []string // names for messages, relative to src
	labels  []int32
	classes []string
	c, h, w int
	blobs   blobSource
	cfg     folderConfig
}

func (d *folderDataset) Len() int               { return len(d.labels) }
func (d *folderDataset) NumClasses() int        { return len(d.classes) }
func (d *folderDataset) ClassNames() []string   { return slices.Clone(d.classes) }
func (d *folderDataset) Shape() (int, int, int) { return d.c, d.h, d.w }
func (d *folderDataset) Label(i int) int        { return int(d.labels[i]) }

func (d *folderDataset) Image(i int, dst []uint8) error {
	if i < 0 || i >= len(d.labels) {
		return fmt.Errorf("imagefolder: %s: image %d out of range [0,%d)", d.src, i, len(d.labels))
	}
	if len(dst) != d.c*d.h*d.w {
		return fmt.Errorf("imagefolder: %s: destination has %d bytes, want %d", d.src, len(dst), d.c*d.h*d.w)
	}
	b, err := d.blobs.read(i)
	if err == nil {
		err = d.cfg.render(b, d.c, d.h, d.w, dst)
	}
	if err != nil {
		return fmt.Errorf("imagefolder: %s: %w", d.name(i), err)
	}
	return nil
}

// name names image i for messages: a path, or archive:member.
func (d *folderDataset) name(i int) string {
	if _, ok := d.blobs.(fileBlobs); ok {
		return filepath.Join(d.src, filepath.FromSlash(d.files[i]))
	}
	return d.src + ":" + d.files[i]
}

// ImageFolder reads images laid out as root/<split>/<class>/…/<image>
// (JPEG or PNG, by extension .jpg, .jpeg or .png in any case; files and
// folders whose name starts with a dot are ignored). Labels are the indices
// of the class folder names in sorted order. pathOrTar is the root folder,
// or a .tar or .tar.gz archive of it; the root may also be the only folder
// under pathOrTar (or, in an archive, the only top-level folder), as in an
// archive of cifar10-jpeg/{train,test}/<class>/.
//
// Images are decoded on each Image call: from their files, from an
// uncompressed .tar at recorded offsets, or, for a .tar.gz, from their
// encoded bytes held in memory (use a folder or an uncompressed .tar for
// data sets too large for that). [Preload] decodes them all at once instead.
// Without [Resize] or [ResizeShorter] all images must have one size (that of
// the first image); in memory they are all checked when opening, otherwise
// each is checked when decoded.
//
// A missing split, a split without class folders, a class folder without
// images, an undecodable image or one of the wrong size is an error naming the
// folder or file.
func ImageFolder(pathOrTar string, split string, opts ...FolderOption) (Dataset, error) {
	return openFolder(pathOrTar, []string{split}, opts...)
}

// folderEntry is one image found while scanning.
type folderEntry struct {
	class string
	rel   string // path relative to the root, slash-separated
	abs   string // file path (folders)
	data  []byte // contents (.tar.gz)
	off   int64  // offset (.tar)
	size  int64
}

// openFolder is ImageFolder taking the first split of a list that exists.
func openFolder(p string, splits []string, opts ...FolderOption) (Dataset, error) {
	cfg := folderConfig{channels: 3}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.err != nil {
		return nil, fmt.Errorf("imagefolder: %s: %w", p, cfg.err)
	}
	for _, s := range splits {
		if s == "" || strings.ContainsAny(s, `/\`) || s == "." || s == ".." {
			return nil, fmt.Errorf("imagefolder: %s: bad split name %q", p, s)
		}
	}
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("imagefolder: %w", err)
	}
	d := &folderDataset{src: p, cfg: cfg, c: cfg.channels}
	var ents []folderEntry
	var classDirs []string
	var loc func(class string) string // names a class folder
	compressed := false
	if st.IsDir() {
		ents, classDirs, loc, err = scanDir(p, splits)
	} else {
		ents, classDirs, loc, compressed, err = scanTar(p, splits)
	}
	if err != nil {
		return nil, fmt.Errorf("imagefolder: %w", err)
	}
	if err := d.index(ents, classDirs, loc); err != nil {
		return nil, fmt.Errorf("imagefolder: %w", err)
	}
	switch {
	case st.IsDir():
		fb := make(fileBlobs, len(ents))
		for i, e := range ents {
			fb[i] = e.abs
		}
		d.blobs = fb
	case compressed:
		mb := make(memBlobs, len(ents))
		for i, e := range ents {
			mb[i] = e.data
		}
		d.blobs = mb
	default:
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("imagefolder: %w", err)
		}
		tb := &tarBlobs{f: f, off: make([]int64, len(ents)), size: make([]int64, len(ents))}
		for i, e := range ents {
			tb.off[i], tb.size[i] = e.off, e.size
		}
		d.blobs = tb
	}
	if err := d.setShape(); err != nil {
		return nil, err
	}
	if cfg.preload {
		return d.preload()
	}
	return d, nil
}

// index sorts the entries (class, then path), checks that every class
// folder has images, and fills classes, files and labels.
func (d *folderDataset) index(ents []folderEntry, classDirs []string, loc func(string) string) error {
	count := map[string]int{}
	for _, c := range classDirs {
		count[c] += 0
	}
	for _, e := range ents {
		count[e.class]++
	}
	if len(count) == 0 {
		return fmt.Errorf("%s: split has no class folders", loc(""))
	}
	d.classes = slices.Sorted(maps.Keys(count))
	for _, c := range d.classes {
		if count[c] == 0 {
			return fmt.Errorf("%s: class folder %q has no images (.jpg, .jpeg or .png)", loc(c), c)
		}
	}
	slices.SortFunc(ents, func(a, b folderEntry) int {
		if c := strings.Compare(a.class, b.class); c != 0 {
			return c
		}
		return strings.Compare(a.rel, b.rel)
	})
	label := map[string]int32{}
	for i, c := range d.classes {
		label[c] = int32(i)
	}
	d.files = make([]string, len(ents))
	d.labels = make([]int32, len(ents))
	for i, e := range ents {
		d.files[i] = e.rel
		d.labels[i] = label[e.class]
	}
	return nil
}

// setShape fixes the image shape: the resize target, or the size of the
// first image. Images held in memory are all checked now.
func (d *folderDataset) setShape() error {
	switch {
	case d.cfg.resizeH > 0:
		d.h, d.w = d.cfg.resizeH, d.cfg.resizeW
		return nil
	case d.cfg.shorter > 0:
		d.h, d.w = d.cfg.shorter, d.cfg.shorter
		return nil
	}
	mb, inMem := d.blobs.(memBlobs)
	n := 1
	if inMem && !d.cfg.preload {
		n = len(mb)
	}
	for i := range n {
		b, err := d.blobs.read(i)
		if err != nil {
			return fmt.Errorf("imagefolder: %s: %w", d.name(i), err)
		}
		c, _, err := image.DecodeConfig(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("imagefolder: %s: decoding: %w", d.name(i), err)
		}
		if i == 0 {
			d.h, d.w = c.Height, c.Width
			if d.h <= 0 || d.w <= 0 {
				return fmt.Errorf("imagefolder: %s: image is %dx%d", d.name(i), c.Width, c.Height)
			}
		} else if c.Height != d.h || c.Width != d.w {
			return fmt.Errorf("imagefolder: %s: image is %dx%d, want %dx%d like %s (all images of a folder must have one size unless resized)",
				d.name(i), c.Width, c.Height, d.w, d.h, d.files[0])
		}
	}
	return nil
}

// preload decodes every image in parallel into a memDataset; the error of
// the lowest failing index is reported.
func (d *folderDataset) preload() (Dataset, error) {
	n, sz := d.Len(), d.c*d.h*d.w
	m := &memDataset{name: d.src, c: d.c, h: d.h, w: d.w, pix: make([]uint8, n*sz), labels: d.labels, classes: d.classes}
	workers := max(1, min(runtime.GOMAXPROCS(0), n))
	type failure struct {
		i   int
		err error
	}
	fails := make([]failure, workers)
	var wg sync.WaitGroup
	for k := range workers {
		wg.Go(func() {
			fails[k].i = n
			for i := k; i < n; i += workers {
				if err := d.Image(i, m.pix[i*sz:(i+1)*sz]); err != nil {
					fails[k] = failure{i, err}
					return
				}
			}
		})
	}
	wg.Wait()
	first := slices.MinFunc(fails, func(a, b failure) int { return a.i - b.i })
	if first.err != nil {
		return nil, first.err
	}
	return m, nil
}

// scanDir lists the images of root/<split> (or root/<only folder>/<split>)
// for the first split that exists.
func scanDir(root string, splits []string) ([]folderEntry, []string, func(string) string, error) {
	base, split := "", ""
	for _, s := range splits {
		if isDir(filepath.Join(root, s)) {
			base, split = root, s
			break
		}
	}
	if base == "" {
		if sub := onlySubdir(root); sub != "" {
			for _, s := range splits {
				if isDir(filepath.Join(sub, s)) {
					base, split = sub, s
					break
				}
			}
		}
	}
	if base == "" {
		return nil, nil, nil, fmt.Errorf("%s: no split folder %s (found: %s): %w",
			root, strings.Join(splits, " or "), strings.Join(subdirs(root), ", "), errMissingSplit)
	}
	sd := filepath.Join(base, split)
	var ents []folderEntry
	var classDirs []string
	for _, c := range subdirs(sd) {
		classDirs = append(classDirs, c)
		cd := filepath.Join(sd, c)
		err := filepath.WalkDir(cd, func(p string, de fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p != cd && strings.HasPrefix(de.Name(), ".") {
				if de.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if de.IsDir() || !isImageName(de.Name()) {
				return nil
			}
			rel, err := filepath.Rel(base, p)
			if err != nil {
				return err
			}
			ents = append(ents, folderEntry{class: c, rel: filepath.ToSlash(rel), abs: p})
			return nil
		})
		if err != nil {
			return nil, nil, nil, err
		}
	}
	if len(classDirs) == 0 {
		return nil, nil, nil, fmt.Errorf("%s: split has no class folders", sd)
	}
	return ents, classDirs, func(c string) string { return filepath.Join(sd, c) }, nil
}

// subdirs lists the non-hidden folders of dir, sorted.
func subdirs(dir string) []string {
	des, _ := os.ReadDir(dir)
	var out []string
	for _, de := range des {
		if de.IsDir() && !strings.HasPrefix(de.Name(), ".") {
			out = append(out, de.Name())
		}
	}
	return out
}

// onlySubdir returns the only non-hidden folder of dir, or "".
func onlySubdir(dir string) string {
	if s := subdirs(dir); len(s) == 1 {
		return filepath.Join(dir, s[0])
	}
	return ""
}

// scanTar lists the images of <split>/ or <top>/<split>/ in a tar or tar.gz
// archive, for the first split present. From a .tar.gz the images are read
// into memory; from a .tar their offsets are recorded.
func scanTar(a string, splits []string) (ents []folderEntry, classDirs []string, loc func(string) string, compressed bool, err error) {
	f, err := os.Open(a)
	if err != nil {
		return nil, nil, nil, false, err
	}
	defer f.Close()
	var head [2]byte
	n, _ := io.ReadFull(f, head[:])
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, nil, nil, false, err
	}
	compressed = isGzip(head[:n])
	var r io.Reader = f
	if compressed {
		rc, err := openMaybeGzip(a)
		if err != nil {
			return nil, nil, nil, false, fmt.Errorf("%s: %w", a, err)
		}
		defer rc.Close()
		r = rc
	}
	type found struct {
		ents      []folderEntry
		classDirs []string
		prefixes  map[string]bool
	}
	per := make([]found, len(splits))
	seen := map[string]bool{} // first folders, for the missing-split message
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, nil, false, fmt.Errorf("%s: reading archive: %w", a, err)
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if hidden(name) {
			continue
		}
		parts := strings.Split(name, "/")
		isDirEnt := h.Typeflag == tar.TypeDir
		isReg := h.FileInfo().Mode().IsRegular()
		if !isDirEnt && !isReg {
			continue
		}
		if len(parts) >= 3 || (isDirEnt && len(parts) >= 2) {
			seen[strings.Join(parts[:min(len(parts)-1, 2)], "/")] = true
		}
		for si, s := range splits {
			j := -1
			for _, k := range []int{0, 1} {
				if k < len(parts) && parts[k] == s {
					j = k
					break
				}
			}
			if j < 0 {
				continue
			}
			fd := &per[si]
			if fd.prefixes == nil {
				fd.prefixes = map[string]bool{}
			}
			if isDirEnt {
				if len(parts) == j+2 {
					fd.classDirs = append(fd.classDirs, parts[j+1])
					fd.prefixes[strings.Join(parts[:j], "/")] = true
				}
				break
			}
			if len(parts) < j+3 {
				break
			}
			if !isImageName(name) {
				// A class folder holding only other files still counts
				// as a class folder (and will be reported as empty).
				fd.classDirs = append(fd.classDirs, parts[j+1])
				fd.prefixes[strings.Join(parts[:j], "/")] = true
				break
			}
			fd.prefixes[strings.Join(parts[:j], "/")] = true
			e := folderEntry{class: parts[j+1], rel: name, size: h.Size}
			if compressed {
				b, err := readN(tr, h.Size)
				if err != nil {
					return nil, nil, nil, false, fmt.Errorf("%s: reading %s: %w", a, h.Name, err)
				}
				e.data = b
			} else {
				off, err := f.Seek(0, io.SeekCurrent)
				if err != nil {
					return nil, nil, nil, false, err
				}
				e.off = off
			}
			fd.ents = append(fd.ents, e)
			break
		}
	}
	if compressed {
		if err := finishArchive(r, a); err != nil {
			return nil, nil, nil, false, err
		}
	}
	for si, s := range splits {
		fd := per[si]
		if len(fd.ents) == 0 && len(fd.classDirs) == 0 {
			continue
		}
		if len(fd.prefixes) > 1 {
			return nil, nil, nil, false, fmt.Errorf("%s: split %q appears under several folders: %s", a, s, strings.Join(slices.Sorted(maps.Keys(fd.prefixes)), ", "))
		}
		if len(fd.ents) > 0 && !compressed {
			// Check that the recorded offsets lie inside the file.
			st, err := f.Stat()
			if err != nil {
				return nil, nil, nil, false, err
			}
			for _, e := range fd.ents {
				if e.off+e.size > st.Size() {
					return nil, nil, nil, false, fmt.Errorf("%s: %s: truncated archive", a, e.rel)
				}
			}
		}
		var prefix string
		for k := range fd.prefixes {
			prefix = k
		}
		sp := path.Join(prefix, s)
		return fd.ents, fd.classDirs, func(c string) string { return a + ":" + path.Join(sp, c) }, compressed, nil
	}
	return nil, nil, nil, false, fmt.Errorf("%s: no split folder %s (found: %s): %w",
		a, strings.Join(splits, " or "), strings.Join(slices.Sorted(maps.Keys(seen)), ", "), errMissingSplit)
}
