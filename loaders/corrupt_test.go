package loaders

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// corruptSource is one loader over a small valid data set in its official
// format, and the files that make it up.
type corruptSource struct {
	what, name, path string // Open(name, path, ...)
	files            []string
}

// corruptSources writes one small data set per loader and format into root.
func corruptSources(t *testing.T, root string) []corruptSource {
	var out []corruptSource
	add := func(what, name, path string) {
		var files []string
		filepath.Walk(path, func(p string, info os.FileInfo, err error) error {
			if err == nil && info.Mode().IsRegular() {
				files = append(files, p)
			}
			return nil
		})
		sort.Strings(files)
		out = append(out, corruptSource{what, name, path, readFiles(t, name, path, files)})
	}
	for _, gz := range []bool{true, false} {
		dir := filepath.Join(root, fmt.Sprintf("mnist-gz-%v", gz))
		writeMNIST(t, dir, "train", 6, gz)
		writeMNIST(t, dir, "t10k", 3, gz)
		add(fmt.Sprintf("MNIST IDX (gzip %v)", gz), "mnist", dir)
	}
	c10 := makeCIFAR10(2, true)
	c10.writeDir(t, filepath.Join(root, "cifar10"))
	add("CIFAR-10 binary", "cifar10", filepath.Join(root, "cifar10"))
	writeFile(t, filepath.Join(root, "cifar10-tgz", "cifar-10-binary.tar.gz"), c10.tar(t, "cifar-10-batches-bin", true))
	add("CIFAR-10 binary .tar.gz", "cifar10", filepath.Join(root, "cifar10-tgz", "cifar-10-binary.tar.gz"))
	makeCIFAR100(3, true).writeDir(t, filepath.Join(root, "cifar100"))
	add("CIFAR-100 binary", "cifar100", filepath.Join(root, "cifar100"))
	imgs, digits := svhnFixture(3)
	for _, compress := range []bool{false, true} {
		dir := filepath.Join(root, fmt.Sprintf("svhn-%v", compress))
		mw := matWriter{order: binary.LittleEndian}
		writeFile(t, filepath.Join(dir, "train_32x32.mat"), mw.file(svhnVars(imgs, digits, false, mw.order), compress))
		writeFile(t, filepath.Join(dir, "test_32x32.mat"), mw.file(svhnVars(imgs[:2], digits[:2], false, mw.order), compress))
		add(fmt.Sprintf("SVHN .mat (compressed %v)", compress), "svhn", dir)
	}
	fx := makeFolder(t)
	fx.writeDir(t, filepath.Join(root, "folder"))
	add("image folder (PNG and JPEG files)", "imagefolder", filepath.Join(root, "folder"))
	writeFile(t, filepath.Join(root, "folder-tgz", "images.tar.gz"), fx.tar(t, "", true))
	add("image folder .tar.gz", "imagefolder", filepath.Join(root, "folder-tgz", "images.tar.gz"))
	writeFile(t, filepath.Join(root, "folder-tar", "images.tar"), fx.tar(t, "", false))
	add("image folder .tar", "imagefolder", filepath.Join(root, "folder-tar", "images.tar"))
	return out
}

// readFiles keeps the files the loader reads: those without which the
// data set no longer loads (the others, such as a "._x.png" resource fork
// or an optional names file, it skips whatever their bytes).
func readFiles(t *testing.T, name, path string, files []string) []string {
	var read []string
	for _, f := range files {
		if err := os.Rename(f, f+".away"); err != nil {
			t.Fatal(err)
		}
		if readAll(name, path) != nil {
			read = append(read, f)
		}
		if err := os.Rename(f+".away", f); err != nil {
			t.Fatal(err)
		}
	}
	return read
}

// readAll opens both splits and decodes every image, as a training run
// does over an epoch; a panic is returned as an error marked PANIC.
func readAll(name, path string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("PANIC: %v", p)
		}
	}()
	for _, train := range []bool{true, false} {
		ds, err := Open(name, path, train)
		if err != nil {
			return err
		}
		c, h, w := ds.Shape()
		buf := make([]byte, c*h*w)
		for i := range ds.Len() {
			if err := ds.Image(i, buf); err != nil {
				return err
			}
		}
	}
	return nil
}

// damage is one way to spoil a file's bytes.
type damage struct {
	class string
	apply func([]byte) []byte
}

func damages(n int) []damage {
	var ds []damage
	for _, cut := range []int{0, 1, 7, n / 2, n - 1} {
		if cut >= 0 && cut < n {
			ds = append(ds, damage{"truncated", func(b []byte) []byte { return bytes.Clone(b[:cut]) }})
		}
	}
	for _, at := range []int{0, 3, 5, 11, n / 3, n / 2, n - 8, n - 1} {
		if at >= 0 && at < n {
			for _, mask := range []byte{0x01, 0xff} {
				ds = append(ds, damage{"bit-flipped", func(b []byte) []byte { c := bytes.Clone(b); c[at] ^= mask; return c }})
			}
		}
	}
	ds = append(ds,
		damage{"wrong-size", func(b []byte) []byte { return append(bytes.Clone(b), 0) }},
		damage{"wrong-size", func(b []byte) []byte { return append(bytes.Clone(b), b...) }},
		damage{"wrong-size", func(b []byte) []byte { return append(bytes.Clone(b), make([]byte, 3073)...) }})
	return ds
}

// TestCorruptDataFiles damages each file of each loader's data set in
// turn (truncated, bit-flipped, wrong-size) and reads everything: there
// must be no panic, and every error must name the damaged file (an archive
// member's error names the archive or the member). A damage the format
// cannot see (a flipped pixel byte of an uncompressed file, bytes after a
// self-delimiting image) may load; the counts are logged per class.
func TestCorruptDataFiles(t *testing.T) {
	root := t.TempDir()
	type tally struct{ tried, errs, accepted int }
	counts := map[string]*tally{}
	accepted := map[string]int{} // truncations and size changes that loaded, by format
	for _, src := range corruptSources(t, root) {
		if err := readAll(src.name, src.path); err != nil {
			t.Fatalf("%s: the undamaged data set does not load: %v", src.what, err)
		}
		for _, file := range src.files {
			good, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range damages(len(good)) {
				if err := os.WriteFile(file, d.apply(good), 0o644); err != nil {
					t.Fatal(err)
				}
				err := readAll(src.name, src.path)
				c := counts[d.class]
				if c == nil {
					c = &tally{}
					counts[d.class] = c
				}
				c.tried++
				switch {
				case err == nil:
					c.accepted++
					if d.class != "bit-flipped" {
						accepted[src.what+": "+d.class+" "+filepath.Ext(file)]++
					}
				case strings.HasPrefix(err.Error(), "PANIC"):
					t.Errorf("%s: %s %s: %v", src.what, d.class, file, err)
				case !strings.Contains(err.Error(), filepath.Base(file)):
					t.Errorf("%s: %s %s: the error does not name the file: %v", src.what, d.class, file, err)
				default:
					c.errs++
				}
			}
			if err := os.WriteFile(file, good, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, class := range []string{"truncated", "bit-flipped", "wrong-size"} {
		c := counts[class]
		t.Logf("%s: %d damaged files read, %d errors naming the file, %d loaded (damage the format cannot see), 0 panics", class, c.tried, c.errs, c.accepted)
	}
	for _, k := range slices.Sorted(maps.Keys(accepted)) {
		t.Logf("loaded despite the damage: %s (%d)", k, accepted[k])
	}
}

// TestUnreadableDataFiles makes each file of each loader's data set
// unreadable in turn (mode 000): the error must name the file and say
// permission denied. Root reads any file, so as root the test runs itself
// again as the user nobody.
func TestUnreadableDataFiles(t *testing.T) {
	if os.Geteuid() == 0 {
		runAsNobody(t, "^TestUnreadableDataFiles$")
		return
	}
	root := t.TempDir()
	tried := 0
	for _, src := range corruptSources(t, root) {
		for _, file := range src.files {
			if err := os.Chmod(file, 0); err != nil {
				t.Fatal(err)
			}
			err := readAll(src.name, src.path)
			tried++
			if err == nil || !strings.Contains(err.Error(), filepath.Base(file)) || !strings.Contains(err.Error(), "permission denied") {
				t.Errorf("%s: unreadable %s: %v", src.what, file, err)
			}
			if err := os.Chmod(file, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("permission-denied: %d unreadable files, each an error naming it", tried)
}

// runAsNobody runs the tests matching pattern in a copy of this test
// binary as uid/gid 65534, failing with its output if they fail.
func runAsNobody(t *testing.T, pattern string) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "loaders-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "loaders.test")
	if err := copyFile(exe, bin); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run", pattern, "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TMPDIR=/tmp", "HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "permission-denied:") {
			t.Log("as nobody: " + strings.TrimSpace(line))
		}
	}
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
