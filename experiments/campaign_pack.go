package experiments

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/eraserelu/eraserelu/train"
)

// A device call returns at most 8 files of at most 16 MiB each, and carries
// at most 64 MiB in, binary and data sets included. So a campaign's state
// travels as two archives: ResultsArchive (the finished runs' small files,
// laid out as they go into the repository) and StateArchive (what the next
// call resumes from).
const (
	ResultsArchive = "results.tar.gz"
	StateArchive   = "state.tar.gz"
)

// resultFiles are the files of a finished run that the repository keeps:
// metrics, results and the configuration, no weights.
var resultFiles = []string{jobFile, train.ConfigFile, train.ResultsFile, train.MetricsFile}

// partialFiles are what resuming an unfinished run needs (and its log, so
// the log of the whole run survives the calls).
var partialFiles = []string{jobFile, train.ConfigFile, train.MetricsFile, train.LogFile, workerLog,
	filepath.Join(train.CheckpointDir, train.LastCheckpoint)}

// workerLog in a run directory collects the output of the processes that
// trained it.
const workerLog = "worker.log"

// PackOptions say what a pack keeps.
type PackOptions struct {
	// ResultsPrefix is where the finished runs go in the repository:
	// ResultsArchive holds ResultsPrefix/<experiment>/<job id>/...
	ResultsPrefix string
	// MaxStateBytes bounds StateArchive: unfinished runs' checkpoints are
	// kept in priority order while they fit; the others restart next call.
	MaxStateBytes int64
	// Order is the campaign's priority order (run directories not in it
	// come after, by name).
	Order []CampaignJob
}

// PackResult says what a pack kept.
type PackResult struct {
	Done, Failed int
	// Resumable are the unfinished runs whose checkpoints are in the state
	// archive; Dropped those that did not fit (they restart from scratch).
	Resumable, Dropped       []string
	ResultsBytes, StateBytes int64
}

// PackCampaign writes ResultsArchive and StateArchive into outDir from a
// state directory.
func PackCampaign(state, outDir string, o PackOptions) (PackResult, error) {
	var res PackResult
	runs, err := stateRuns(state, o.Order)
	if err != nil {
		return res, err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return res, err
	}
	results, err := newArchive(filepath.Join(outDir, ResultsArchive))
	if err != nil {
		return res, err
	}
	defer results.abort()
	st, err := newArchive(filepath.Join(outDir, StateArchive))
	if err != nil {
		return res, err
	}
	defer st.abort()
	var partial []string
	for _, rel := range runs {
		dir := filepath.Join(state, rel)
		switch StateOf(dir) {
		case JobDone:
			res.Done++
			for _, f := range resultFiles {
				if err := results.addIfExists(path.Join(o.ResultsPrefix, filepath.ToSlash(rel), f), filepath.Join(dir, f)); err != nil {
					return res, err
				}
				if err := st.addIfExists(path.Join(filepath.ToSlash(rel), f), filepath.Join(dir, f)); err != nil {
					return res, err
				}
			}
		case JobFailed:
			res.Failed++
			for _, f := range []string{jobFile, failedFile} {
				if err := results.addIfExists(path.Join(o.ResultsPrefix, filepath.ToSlash(rel), f), filepath.Join(dir, f)); err != nil {
					return res, err
				}
				if err := st.addIfExists(path.Join(filepath.ToSlash(rel), f), filepath.Join(dir, f)); err != nil {
					return res, err
				}
			}
		case JobPartial:
			partial = append(partial, rel)
		}
	}
	// Checkpoints last, in priority order, while the archive stays under
	// the bound (a run's files are counted uncompressed: weights barely
	// compress).
	for _, rel := range partial {
		dir := filepath.Join(state, rel)
		var size int64
		for _, f := range partialFiles {
			if fi, err := os.Stat(filepath.Join(dir, f)); err == nil {
				size += fi.Size()
			}
		}
		used, err := st.size()
		if err != nil {
			return res, err
		}
		if o.MaxStateBytes > 0 && used+size > o.MaxStateBytes {
			res.Dropped = append(res.Dropped, rel)
			continue
		}
		for _, f := range partialFiles {
			if err := st.addIfExists(path.Join(filepath.ToSlash(rel), filepath.ToSlash(f)), filepath.Join(dir, f)); err != nil {
				return res, err
			}
		}
		res.Resumable = append(res.Resumable, rel)
	}
	if res.ResultsBytes, err = results.close(); err != nil {
		return res, err
	}
	if res.StateBytes, err = st.close(); err != nil {
		return res, err
	}
	return res, nil
}

// stateRuns lists the run directories (those holding a job.json) under
// state, at any depth (a selection's candidate runs sit in
// <experiment>/<group>-select/<candidate>/): those of order first, in its
// order, then the others by path.
func stateRuns(state string, order []CampaignJob) ([]string, error) {
	found := map[string]bool{}
	var rest []string
	err := filepath.WalkDir(state, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if d.Name() == train.CheckpointDir {
			return filepath.SkipDir
		}
		if _, err := os.Stat(filepath.Join(p, jobFile)); err == nil && p != state {
			rel, err := filepath.Rel(state, p)
			if err != nil {
				return err
			}
			found[rel] = true
			rest = append(rest, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("campaign state %s: %w", state, err)
	}
	var out []string
	for _, cj := range order {
		rel := filepath.Join(cj.Experiment, cj.Job.ID)
		if found[rel] {
			out = append(out, rel)
			delete(found, rel)
		}
	}
	sort.Strings(rest)
	for _, rel := range rest {
		if found[rel] {
			out = append(out, rel)
		}
	}
	return out, nil
}

// archive is a .tar.gz written to a temporary name and renamed on close.
type archive struct {
	path string
	f    *os.File
	gz   *gzip.Writer
	tw   *tar.Writer
	done bool
}

func newArchive(p string) (*archive, error) {
	f, err := os.CreateTemp(filepath.Dir(p), filepath.Base(p)+".tmp*")
	if err != nil {
		return nil, err
	}
	gz := gzip.NewWriter(f)
	return &archive{path: p, f: f, gz: gz, tw: tar.NewWriter(gz)}, nil
}

func (a *archive) addIfExists(name, file string) error {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := a.tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: fi.Size(), ModTime: fi.ModTime(), Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("%s: %w", a.path, err)
	}
	if _, err := io.Copy(a.tw, f); err != nil {
		return fmt.Errorf("%s: %s: %w", a.path, file, err)
	}
	return nil
}

// size is the archive's compressed size so far.
func (a *archive) size() (int64, error) {
	if err := a.tw.Flush(); err != nil {
		return 0, err
	}
	if err := a.gz.Flush(); err != nil {
		return 0, err
	}
	fi, err := a.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (a *archive) close() (int64, error) {
	if err := a.tw.Close(); err != nil {
		return 0, err
	}
	if err := a.gz.Close(); err != nil {
		return 0, err
	}
	if err := a.f.Chmod(0o644); err != nil {
		return 0, err
	}
	if err := a.f.Sync(); err != nil {
		return 0, err
	}
	fi, err := a.f.Stat()
	if err != nil {
		return 0, err
	}
	if err := a.f.Close(); err != nil {
		return 0, err
	}
	a.done = true
	return fi.Size(), os.Rename(a.f.Name(), a.path)
}

func (a *archive) abort() {
	if !a.done {
		a.f.Close()
		os.Remove(a.f.Name())
	}
}

// UnpackArchive extracts a .tar.gz written by PackCampaign into dir (a
// state directory, or the repository root for ResultsArchive). Regular
// files only, and no name may leave dir.
func UnpackArchive(archivePath, dir string) (files int, err error) {
	f, err := os.Open(archivePath)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", archivePath, err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return files, fmt.Errorf("%s: %w", archivePath, err)
		}
		name := path.Clean(h.Name)
		if h.Typeflag != tar.TypeReg || path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return files, fmt.Errorf("%s: entry %q: only regular files inside the directory are unpacked", archivePath, h.Name)
		}
		dst := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return files, err
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return files, fmt.Errorf("%s: %s: %w", archivePath, h.Name, err)
		}
		if err := train.WriteBytesAtomic(dst, b); err != nil {
			return files, err
		}
		files++
	}
}
