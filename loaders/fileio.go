package loaders

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// gzipReadCloser closes both the gzip stream and the file under it.
type gzipReadCloser struct {
	*gzip.Reader
	f *os.File
}

func (g gzipReadCloser) Close() error {
	err := g.Reader.Close()
	if ferr := g.f.Close(); err == nil {
		err = ferr
	}
	return err
}

type fileReadCloser struct {
	*bufio.Reader
	f *os.File
}

func (f fileReadCloser) Close() error { return f.f.Close() }

// isGzip reports whether b starts with the gzip magic number.
func isGzip(b []byte) bool { return len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b }

// openMaybeGzip opens path, decompressing it on the fly when its content
// starts with the gzip magic number (whatever its name).
func openMaybeGzip(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, 1<<16)
	head, _ := br.Peek(2)
	if !isGzip(head) {
		return fileReadCloser{br, f}, nil
	}
	gz, err := gzip.NewReader(br)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: gzip: %w", path, err)
	}
	return gzipReadCloser{gz, f}, nil
}

// errTruncated reports a file that ends before the data its header promises.
type errTruncated struct{ have, want int64 }

func (e *errTruncated) Error() string {
	return fmt.Sprintf("truncated: %d of %d bytes", e.have, e.want)
}

func (e *errTruncated) Unwrap() error { return io.ErrUnexpectedEOF }

// readN reads exactly n bytes from r. The buffer grows with the data
// actually read, so a corrupt header that promises a huge size costs no more
// memory than the file holds.
func readN(r io.Reader, n int64) ([]byte, error) {
	const chunk = 1 << 20
	buf := make([]byte, 0, min(n, chunk))
	for int64(len(buf)) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, int(min(n-int64(len(buf)), int64(len(buf)))))
		}
		room := buf[len(buf):cap(buf)]
		if rest := n - int64(len(buf)); int64(len(room)) > rest {
			room = room[:rest]
		}
		m, err := r.Read(room)
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			if int64(len(buf)) < n {
				return buf, &errTruncated{int64(len(buf)), n}
			}
			break
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return buf, fmt.Errorf("truncated: %w (%d of %d bytes read)", err, len(buf), n)
			}
			return buf, err
		}
	}
	return buf, nil
}

// finishArchive reads what follows the end of a tar archive read from r
// (the archive at path): a tar reader stops at the end-of-archive blocks,
// so without this a gzip stream would never check its CRC and length, and
// a truncated or extended .tar.gz would load.
func finishArchive(r io.Reader, path string) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("%s: after the archive's end: %w", path, err)
	}
	return nil
}

// expectEOF checks that r has no data left (and, for a gzip stream, lets it
// verify its checksum).
func expectEOF(r io.Reader) error {
	var b [1]byte
	for range 100 {
		m, err := r.Read(b[:])
		if m > 0 {
			return errors.New("unexpected data after the end")
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}
