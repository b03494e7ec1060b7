package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/eraserelu/eraserelu/train"
)

// Workload is one small real training run the suite interrupts and damages.
type Workload struct {
	Name string
	// Args are the `eraserelu train` flags, without --out.
	Args []string
	// Kills is the number of kill -9s of its kill series.
	Kills int
	// FlipsPerRegion is the number of random single-byte flips per
	// checkpoint region, besides its first and last byte.
	FlipsPerRegion int
}

// Suite drives the real eraserelu binary.
type Suite struct {
	Bin  string // the eraserelu binary
	Work string // scratch directory
	Seed uint64
	Out  io.Writer
	rng  *rand.Rand
}

// Figures are what the suite counts.
type Figures struct {
	KillsTried, KillsSurvived int
	KillPhases                map[string]int // phase -> kills landed in it
	CorruptTried, Detected    int
	Silent, Panics            int
	Runs, Identical           int
	Skipped                   []string // checks skipped, with the reason
	Failures                  []string
}

func (f *Figures) fail(format string, args ...any) {
	f.Failures = append(f.Failures, fmt.Sprintf(format, args...))
}

// OK says whether every check held.
func (f *Figures) OK() bool {
	return len(f.Failures) == 0 && f.KillsSurvived == f.KillsTried && f.Detected == f.CorruptTried &&
		f.Silent == 0 && f.Panics == 0 && f.Identical == f.Runs
}

// Print writes the figures.
func (f *Figures) Print(w io.Writer) {
	var phases []string
	for _, p := range []string{"startup", "step", "eval", "checkpoint"} {
		phases = append(phases, fmt.Sprintf("%s %d", p, f.KillPhases[p]))
	}
	fmt.Fprintf(w, "kills survived/tried: %d/%d (%s)\n", f.KillsSurvived, f.KillsTried, strings.Join(phases, ", "))
	fmt.Fprintf(w, "corruptions detected/tried: %d/%d (silent %d, panics %d)\n", f.Detected, f.CorruptTried, f.Silent, f.Panics)
	fmt.Fprintf(w, "runs identical/total: %d/%d\n", f.Identical, f.Runs)
	for _, s := range f.Skipped {
		fmt.Fprintf(w, "skipped: %s\n", s)
	}
	for _, s := range f.Failures {
		fmt.Fprintf(w, "FAILED: %s\n", s)
	}
}

func (s *Suite) logf(format string, args ...any) {
	if s.Out != nil {
		fmt.Fprintf(s.Out, format+"\n", args...)
	}
}

// Run runs every check on each workload; the first workload also gets the
// full-disk check.
func (s *Suite) Run(loads []Workload, diskCheck bool) *Figures {
	s.rng = rand.New(rand.NewPCG(s.Seed, 0x5eed))
	f := &Figures{KillPhases: map[string]int{}}
	for i, w := range loads {
		start := time.Now()
		ref := filepath.Join(s.Work, w.Name, "reference")
		if out, err := s.launch(w.Args, ref); err != nil {
			f.fail("%s: uninterrupted run: %v\n%s", w.Name, err, out)
			continue
		}
		want, err := snapshot(ref)
		if err != nil {
			f.fail("%s: %v", w.Name, err)
			continue
		}
		s.logf("%s: reference run %s", w.Name, time.Since(start).Round(time.Millisecond))
		s.killSeries(f, w, want)
		s.flipResume(f, w, want)
		s.corruptClasses(f, w, filepath.Join(ref, train.CheckpointDir, train.LastCheckpoint))
		if i == 0 && diskCheck {
			s.fullDisk(f, w, want)
		}
		s.logf("%s: done in %s", w.Name, time.Since(start).Round(time.Millisecond))
	}
	return f
}

// launch runs one training to its end.
func (s *Suite) launch(args []string, dir string) (string, error) {
	cmd := exec.Command(s.Bin, append(append([]string{"train"}, args...), "--out", dir)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// result is what must not differ between an interrupted and an
// uninterrupted run: the metrics without timings, and a digest of the last
// checkpoint's tensors (weights, velocities, batch-norm statistics), op
// RNG states and position.
type result struct {
	Metrics string
	Weights string
}

func snapshot(dir string) (result, error) {
	b, err := os.ReadFile(filepath.Join(dir, train.ResultsFile))
	if err != nil {
		return result{}, err
	}
	var r train.Result
	if err := json.Unmarshal(b, &r); err != nil {
		return result{}, fmt.Errorf("%s: %w", filepath.Join(dir, train.ResultsFile), err)
	}
	for i := range r.History {
		r.History[i].Seconds, r.History[i].ImagesPerSec = 0, 0
	}
	r.Final.Seconds, r.Final.ImagesPerSec, r.Seconds, r.Dir, r.Commit = 0, 0, 0, "", ""
	m, _ := json.Marshal(r)
	st, err := train.ReadCheckpointFile(filepath.Join(dir, train.CheckpointDir, train.LastCheckpoint))
	if err != nil {
		return result{}, err
	}
	h := sha256.New()
	if err := train.EncodeSafetensors(h, st.Tensors, nil); err != nil {
		return result{}, err
	}
	var keys []string
	for k := range st.Metadata {
		if strings.HasPrefix(k, "rng.") || k == "step" || k == "epoch" || k == "batch" || k == "last_loss" || k == "optim.started" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\n", k, st.Metadata[k])
	}
	return result{Metrics: string(m), Weights: hex.EncodeToString(h.Sum(nil))}, nil
}

func (s *Suite) compare(f *Figures, what, dir string, want result) {
	f.Runs++
	got, err := snapshot(dir)
	switch {
	case err != nil:
		f.fail("%s: %v", what, err)
	case got.Weights != want.Weights:
		f.fail("%s: final weights differ from the uninterrupted run", what)
	case got.Metrics != want.Metrics:
		f.fail("%s: final metrics differ from the uninterrupted run:\n got %s\nwant %s", what, got.Metrics, want.Metrics)
	default:
		f.Identical++
	}
}

// phases the kills aim at, in turn.
var killTargets = []string{"step", "eval", "checkpoint"}

// killSeries launches the workload into one run directory again and again,
// each launch killed (SIGKILL) in the phase aimed at, until a launch is let
// finish; every launch after a kill must resume without error, and the
// finished run must equal the uninterrupted one. A launch that finishes
// before its kill landed ends the series; the next series, in a new
// directory, aims at the same phase again.
func (s *Suite) killSeries(f *Figures, w Workload, want result) {
	done := 0
	for series := 0; done < w.Kills && series < 4; series++ {
		dir := filepath.Join(s.Work, w.Name, fmt.Sprintf("killed-%d", series))
		kills := 0
		for {
			cmd := exec.Command(s.Bin, append(append([]string{"train"}, w.Args...), "--out", dir)...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			logStart := fileSize(filepath.Join(dir, train.LogFile))
			if err := cmd.Start(); err != nil {
				f.fail("%s: start: %v", w.Name, err)
				return
			}
			phase := ""
			if done+kills < w.Kills {
				phase = s.killIn(cmd.Process.Pid, dir, logStart, killTargets[(done+kills)%len(killTargets)])
			}
			err := cmd.Wait()
			if phase != "" {
				kills++
				f.KillsTried++
				f.KillPhases[phase]++
				continue
			}
			if err != nil {
				// Every kill but the last was followed by a launch that worked.
				f.KillsSurvived += max(0, kills-1)
				f.fail("%s: launch after %d kills failed: %v\n%s", w.Name, kills, err, out.String())
				return
			}
			f.KillsSurvived += kills
			break
		}
		done += kills
		s.compare(f, fmt.Sprintf("%s after %d kills", w.Name, kills), dir, want)
	}
}

// killIn stops the process at random moments (SIGSTOP), looks at what it
// is doing, and kills it (SIGKILL) once that is the phase aimed at;
// otherwise it lets it go on (SIGCONT). It returns the phase of the kill,
// or "" when the process ended first.
func (s *Suite) killIn(pid int, dir string, logStart int64, want string) string {
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		// Evaluation and checkpoint writes take milliseconds: look often.
		time.Sleep(time.Duration(s.rng.IntN(3000)) * time.Microsecond)
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			return "" // exited
		}
		phase := phaseOf(dir, logStart)
		if phase == want {
			syscall.Kill(pid, syscall.SIGKILL)
			return phase
		}
		syscall.Kill(pid, syscall.SIGCONT)
		if processGone(pid) {
			return ""
		}
	}
	return ""
}

func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name in parentheses; Z is a zombie.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z'
}

// phaseOf reads what a stopped run is doing from its files: a checkpoint
// temporary file or the "writing checkpoint" log line is a checkpoint
// write, "evaluating" the evaluation, no log line of this launch yet the
// start-up (data loading, graph building), anything else a training step.
func phaseOf(dir string, logStart int64) string {
	tmps, _ := filepath.Glob(filepath.Join(dir, train.CheckpointDir, ".*.tmp-*"))
	if len(tmps) > 0 {
		return "checkpoint"
	}
	msg := lastLogMessage(filepath.Join(dir, train.LogFile), logStart)
	switch msg {
	case "":
		return "startup"
	case "writing checkpoint":
		return "checkpoint"
	case "evaluating":
		return "eval"
	}
	return "step"
}

// lastLogMessage is the msg of the last complete JSON line written to the
// log after offset start.
func lastLogMessage(path string, start int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	size, _ := f.Seek(0, io.SeekEnd)
	from := max(start, size-8192)
	f.Seek(from, io.SeekStart)
	b, _ := io.ReadAll(f)
	msg := ""
	for sc := bufio.NewScanner(bytes.NewReader(b)); sc.Scan(); {
		var e struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Msg != "" {
			msg = e.Msg
		}
	}
	return msg
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// flipResume is the byte-flip scenario: kill the run after its first
// epoch, flip one byte in the middle of last.safetensors, run again: the
// resume must warn naming the file, fall back, and end identical.
func (s *Suite) flipResume(f *Figures, w Workload, want result) {
	dir := filepath.Join(s.Work, w.Name, "flipped")
	cmd := exec.Command(s.Bin, append(append([]string{"train"}, w.Args...), "--out", dir)...)
	if err := cmd.Start(); err != nil {
		f.fail("%s: start: %v", w.Name, err)
		return
	}
	for !processGone(cmd.Process.Pid) && !strings.Contains(readFile(filepath.Join(dir, train.LogFile)), `"msg":"epoch done"`) {
		time.Sleep(time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	last := filepath.Join(dir, train.CheckpointDir, train.LastCheckpoint)
	b, err := os.ReadFile(last)
	if err != nil {
		f.fail("%s: byte-flip scenario: %v", w.Name, err)
		return
	}
	b[len(b)/2] ^= 0x20
	if err := os.WriteFile(last, b, 0o644); err != nil {
		f.fail("%s: %v", w.Name, err)
		return
	}
	f.CorruptTried++
	out, err := s.launch(w.Args, dir)
	if err != nil {
		f.fail("%s: resume after a flipped byte failed: %v\n%s", w.Name, err, out)
		return
	}
	if strings.Contains(out, "failed verification") && strings.Contains(out, last) {
		f.Detected++
	} else {
		f.Silent++
		f.fail("%s: resume after a flipped byte in %s gave no warning:\n%s", w.Name, last, out)
	}
	s.compare(f, w.Name+" after a flipped byte", dir, want)
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// region is a byte range of a checkpoint file, one corruption class.
type region struct {
	name   string
	lo, hi int
}

// regions splits a safetensors file into its parts: the length prefix,
// the header's metadata, each tensor's header entry (together one class),
// the header's JSON structure and padding, and each tensor's data.
func regions(b []byte) ([]region, error) {
	if len(b) < 8 {
		return nil, errors.New("file too short")
	}
	n := int(binary.LittleEndian.Uint64(b[:8]))
	if n > len(b)-8 {
		return nil, errors.New("header length past the end")
	}
	header := b[8 : 8+n]
	out := []region{{"length prefix", 0, 8}}
	dec := json.NewDecoder(bytes.NewReader(header))
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	type entry struct {
		Offsets []int `json:"data_offsets"`
	}
	var tensors []region
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := tok.(string)
		var raw json.RawMessage
		from := int(dec.InputOffset())
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		to := int(dec.InputOffset())
		lo := 8 + from + bytes.Index(header[from:to], raw[:1])
		r := region{"header: tensor entries", lo, lo + len(raw)}
		if key == "__metadata__" {
			r.name = "header: metadata"
		} else {
			var e entry
			if err := json.Unmarshal(raw, &e); err != nil || len(e.Offsets) != 2 {
				return nil, fmt.Errorf("tensor %q: bad entry", key)
			}
			tensors = append(tensors, region{"tensor " + key, 8 + n + e.Offsets[0], 8 + n + e.Offsets[1]})
		}
		out = append(out, r)
	}
	out = append(out, region{"header: structure and padding", 8, 8 + n})
	sort.Slice(tensors, func(i, j int) bool { return tensors[i].lo < tensors[j].lo })
	return append(out, tensors...), nil
}

// corruptClasses damages a copy of a real checkpoint once per class and
// cut: byte flips at the first, last and random bytes of every region,
// truncation at the start and middle of every region, and one byte
// appended. Each must be detected by the loader the trainer uses.
func (s *Suite) corruptClasses(f *Figures, w Workload, path string) {
	good, err := os.ReadFile(path)
	if err != nil {
		f.fail("%s: %v", w.Name, err)
		return
	}
	rs, err := regions(good)
	if err != nil {
		f.fail("%s: %s: %v", w.Name, path, err)
		return
	}
	bad := filepath.Join(s.Work, w.Name, "corrupt.safetensors")
	classes := map[string]bool{}
	try := func(b []byte, what string) {
		f.CorruptTried++
		if err := os.WriteFile(bad, b, 0o644); err != nil {
			f.fail("%s: %v", w.Name, err)
			return
		}
		err, panicked := loadGuarded(bad)
		switch {
		case panicked != nil:
			f.Panics++
			f.fail("%s: %s: the loader panicked: %v", w.Name, what, panicked)
		case err == nil:
			f.Silent++
			f.fail("%s: %s: not detected", w.Name, what)
		case !strings.Contains(err.Error(), bad):
			f.fail("%s: %s: the error does not name the file: %v", w.Name, what, err)
		default:
			f.Detected++
		}
	}
	buf := make([]byte, len(good))
	for _, r := range rs {
		if r.hi <= r.lo {
			continue
		}
		classes[strings.SplitN(r.name, " ", 2)[0]] = true
		spots := []int{r.lo, r.hi - 1}
		for range w.FlipsPerRegion {
			spots = append(spots, r.lo+s.rng.IntN(r.hi-r.lo))
		}
		for _, at := range spots {
			copy(buf, good)
			buf[at] ^= byte(1 << s.rng.IntN(8))
			try(buf, fmt.Sprintf("%s: byte %d flipped", r.name, at))
		}
		for _, cut := range []int{r.lo, (r.lo + r.hi) / 2} {
			try(good[:cut], fmt.Sprintf("%s: truncated at byte %d", r.name, cut))
		}
	}
	try(append(bytes.Clone(good), 0), "one byte appended")
	os.Remove(bad)
	s.logf("%s: %d regions of %s damaged", w.Name, len(rs), filepath.Base(path))
}

// loadGuarded reads a checkpoint as a resume does, catching a panic.
func loadGuarded(path string) (err error, panicked any) {
	defer func() { panicked = recover() }()
	_, err = train.ReadCheckpointFile(path)
	return err, nil
}

// fullDisk runs the workload's first epoch on a small tmpfs, fills it, and
// extends the run: the checkpoint write must fail with a clear error and
// leave the previous checkpoints verifying; with the space back, the run
// must finish identical to the uninterrupted one. It needs root (mount).
func (s *Suite) fullDisk(f *Figures, w Workload, want result) {
	if os.Geteuid() != 0 {
		f.Skipped = append(f.Skipped, "full disk: mounting a tmpfs needs root")
		return
	}
	ref := filepath.Join(s.Work, w.Name, "reference", train.CheckpointDir, train.LastCheckpoint)
	size := fileSize(ref)
	mnt := filepath.Join(s.Work, w.Name, "tmpfs")
	os.MkdirAll(mnt, 0o755)
	opt := fmt.Sprintf("size=%d", 3*size+4<<20)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opt, "tmpfs", mnt).CombinedOutput(); err != nil {
		f.Skipped = append(f.Skipped, fmt.Sprintf("full disk: mount -t tmpfs failed (%v: %s)", err, strings.TrimSpace(string(out))))
		return
	}
	defer exec.Command("umount", mnt).Run()
	dir := filepath.Join(mnt, "run")
	one := withFlag(w.Args, "--epochs", "1")
	if out, err := s.launch(one, dir); err != nil {
		f.fail("full disk: first epoch on the tmpfs: %v\n%s", err, out)
		return
	}
	var st syscall.Statfs_t
	syscall.Statfs(mnt, &st)
	free := int64(st.Bavail) * st.Bsize
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, max(0, free-size/2)), 0o644); err != nil && !errors.Is(err, syscall.ENOSPC) {
		f.fail("full disk: fill: %v", err)
		return
	}
	ck := filepath.Join(dir, train.CheckpointDir)
	out, err := s.launch(withFlag(w.Args, "--epochs", "2"), dir)
	if err == nil {
		f.fail("full disk: the run went on with the disk full:\n%s", out)
		return
	}
	for _, wantText := range []string{"no space left on device", filepath.Join(ck, train.LastCheckpoint), "previous checkpoints are intact"} {
		if !strings.Contains(out, wantText) {
			f.fail("full disk: the error lacks %q:\n%s", wantText, out)
		}
	}
	for name, epoch := range map[string]string{train.LastCheckpoint: "1", train.PrevCheckpoint: "0"} {
		st, err := train.ReadCheckpointFile(filepath.Join(ck, name))
		if err != nil || st.Metadata["epoch"] != epoch {
			f.fail("full disk: %s after the failed write: %v (epoch %s, want %s)", name, err, st.Metadata["epoch"], epoch)
		}
	}
	if tmps, _ := filepath.Glob(filepath.Join(ck, ".*")); len(tmps) > 0 {
		f.fail("full disk: temporary files left: %v", tmps)
	}
	os.Remove(filler)
	if out, err := s.launch(w.Args, dir); err != nil {
		f.fail("full disk: resume with the space back: %v\n%s", err, out)
		return
	}
	s.compare(f, w.Name+" after a full disk", dir, want)
	s.logf("%s: full disk checked on a %s tmpfs", w.Name, opt)
}

// withFlag returns args with flag set to value (replaced or appended).
func withFlag(args []string, flag, value string) []string {
	out := append([]string(nil), args...)
	for i := 0; i+1 < len(out); i++ {
		if out[i] == flag {
			out[i+1] = value
			return out
		}
	}
	return append(out, flag, value)
}
