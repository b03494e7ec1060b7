package train

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
)

// WriteFileAtomic writes a file so that readers (and a crash) see either
// the old contents or the complete new ones, never a mix: write calls fill
// a temporary file in the same directory, which is synced, closed, renamed
// over path, and then the directory is synced so the rename is durable.
// On any error the temporary file is removed and path is untouched.
func WriteFileAtomic(path string, write func(w io.Writer) error) error {
	return writeAtomic(path, "", write)
}

// WriteFileRotating is WriteFileAtomic that keeps the file it replaces:
// once the new contents are complete and synced, path (if there) is
// renamed to prev, then the new file to path. A crash between the two
// renames leaves prev and no path; readers fall back to prev.
func WriteFileRotating(path, prev string, write func(w io.Writer) error) error {
	return writeAtomic(path, prev, write)
}

func writeAtomic(path, prev string, write func(w io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err = write(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if prev != "" {
		if err = os.Rename(path, prev); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("keep the previous file as %s: %w", prev, err)
		}
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// WriteBytesAtomic is WriteFileAtomic of a byte slice.
func WriteBytesAtomic(path string, b []byte) error {
	return WriteFileAtomic(path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	if serr != nil && !errors.Is(serr, os.ErrInvalid) {
		return fmt.Errorf("sync directory %s: %w", dir, serr)
	}
	return cerr
}
