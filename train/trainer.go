package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/sirupsen/logrus"
	"gorgonia.org/tensor"
)

// Files of a run directory.
const (
	ConfigFile     = "config.json"
	MetricsFile    = "metrics.csv"
	ResultsFile    = "results.json"
	LogFile        = "train.log"
	LossPlotFile   = "loss.png"
	ErrorPlotFile  = "error.png"
	CheckpointDir  = "checkpoints"
	LastCheckpoint = "last.safetensors"
	// PrevCheckpoint is the checkpoint before the last, kept by the
	// rotation so a corrupt last one has a fallback.
	PrevCheckpoint = "prev.safetensors"
)

// Options are a run's surroundings; none of them changes its results.
type Options struct {
	// Dir is the run directory, created if missing. A fresh run refuses a
	// directory that already holds a run, so nothing written is lost.
	Dir string
	// Logger receives the run's log lines (train.log gets them all as JSON
	// regardless); nil discards them.
	Logger *logrus.Logger
	// Progress is where the progress bar (images/s, ETA) is drawn when it is
	// a terminal, typically os.Stderr. When it is nil or not a terminal,
	// progress goes to the logs every LogEvery steps instead.
	Progress io.Writer
	// LogEvery is the number of steps between progress log lines (0: about
	// ten per epoch).
	LogEvery int
	// Resume continues the run in Dir from its latest good checkpoint,
	// exactly as if it had not stopped. Its settings must be the run's,
	// except that Epochs (or Iterations) may grow: that extends the run.
	Resume bool
	// Identity holds what besides Config decides the run's results
	// (architecture, data set, EraseReLU setting, ...), as key/value pairs
	// recorded in its checkpoints and results: a resume with other values
	// is refused, naming them.
	Identity map[string]string
	// OnStep and OnEpoch, when set, are called after each optimizer step
	// and after each epoch (its metrics and checkpoint written).
	OnStep  func(step int, loss float64)
	OnEpoch func(EpochMetrics)
	// Backend makes the backend that runs the passes (nil: the CPU). A
	// device computes in another order and rounds differently, so its
	// results match the CPU's to float32 tolerance, not bit for bit; a run
	// may be resumed on either.
	Backend BackendFactory
}

// Trainer trains a compiled program with SGD under a Config.
//
// The program's graph must have a float input "x" whose first dimension is
// the batch size, an output "loss" (a scalar: the mean loss over the
// labelled examples of the batch) and usually an input "y" of labels
// (tensor.Int, shape [batch]) and an output "logits". Each step fills x
// and y from the training data, runs Program.Train, checks that the loss is
// finite and takes an optimizer step. After each epoch it evaluates the
// test data with Program.Infer (batch norm and dropout in inference mode),
// writes the checkpoint, metrics.csv and the plots. Options.Backend runs
// these passes elsewhere (a GPU).
type Trainer struct {
	prog        *graph.Program
	g           *graph.Graph
	cfg         Config
	trainData   Data
	testData    Data
	opts        Options
	opt         *SGD
	be          Backend
	sched       Schedule
	x, y        *tensor.Dense
	batch, rowN int // batch size and elements per row of x
}

// New checks the program against the config and prepares a trainer. The
// caller builds the graph and the data sources from cfg.Seed; testData may
// be nil.
func New(prog *graph.Program, cfg Config, trainData, testData Data, opts Options) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if prog == nil || trainData == nil {
		return nil, errors.New("trainer: a program and training data are required")
	}
	if opts.Dir == "" {
		return nil, errors.New("trainer: Options.Dir (the run directory) is required")
	}
	g := prog.Graph()
	t := &Trainer{prog: prog, g: g, cfg: cfg, trainData: trainData, testData: testData, opts: opts,
		sched: cfg.Schedule(), batch: cfg.BatchSize}
	xn, ok := g.Input("x")
	if !ok {
		return nil, fmt.Errorf("trainer: the graph has no input \"x\" (inputs: %v)", g.InputNames())
	}
	xs := xn.Shape()
	if len(xs) == 0 || xs[0] != cfg.BatchSize {
		return nil, fmt.Errorf("trainer: graph input x has shape %v; its first dimension must be batch_size %d", xs, cfg.BatchSize)
	}
	if dt := xn.Dtype(); dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, fmt.Errorf("trainer: graph input x has dtype %v, want float32 or float64", dt)
	}
	t.x = tensor.New(tensor.Of(xn.Dtype()), tensor.WithShape(xs.Clone()...))
	t.rowN = t.x.Size() / cfg.BatchSize
	if yn, ok := g.Input("y"); ok {
		ys := yn.Shape()
		if len(ys) != 1 || ys[0] != cfg.BatchSize {
			return nil, fmt.Errorf("trainer: graph input y has shape %v, want (%d)", ys, cfg.BatchSize)
		}
		if dt := yn.Dtype(); dt != tensor.Int && dt != tensor.Int64 && dt != tensor.Int32 {
			return nil, fmt.Errorf("trainer: graph input y has dtype %v, want int", dt)
		}
		t.y = tensor.New(tensor.Of(yn.Dtype()), tensor.WithShape(cfg.BatchSize))
	} else {
		// A graph without labels (e.g. a regression): the data still gets a y.
		t.y = tensor.New(tensor.Of(tensor.Int), tensor.WithShape(cfg.BatchSize))
	}
	if _, ok := g.Output("loss"); !ok {
		return nil, fmt.Errorf("trainer: the graph has no output \"loss\" (outputs: %v)", g.OutputNames())
	}
	var err error
	if t.opt, err = NewSGD(g.Params(), cfg.SGDOptions()); err != nil {
		return nil, fmt.Errorf("trainer: %w", err)
	}
	if opts.Backend == nil {
		t.be = newCPUBackend(prog, t.opt)
	} else if t.be, err = opts.Backend(prog, cfg, t.opt); err != nil {
		t.opt.Close()
		return nil, fmt.Errorf("trainer: %w", err)
	}
	return t, nil
}

// Optimizer is the trainer's SGD. With a device backend its velocities are
// those of the last checkpoint (or the end of Run).
func (t *Trainer) Optimizer() *SGD { return t.opt }

// Backend is what runs the trainer's passes.
func (t *Trainer) Backend() Backend { return t.be }

// Config is the trainer's config (Commit filled in once Run starts).
func (t *Trainer) Config() Config { return t.cfg }

// Close releases the backend and stops the optimizer's workers; the
// program is the caller's to close.
func (t *Trainer) Close() error {
	err := t.be.Close()
	t.opt.Close()
	return err
}

// DivergedError reports a loss that became NaN or infinite.
type DivergedError struct {
	Step, Epoch, Batch int // where it happened; Epoch counts from 1
	Loss               float64
	LastLoss           float64 // last finite loss, at LastStep (-1: none)
	LastStep           int
	// Checkpoint is the last good checkpoint, kept; "" if none was written.
	Checkpoint      string
	CheckpointEpoch int
}

func (e *DivergedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "training diverged: loss is %v at step %d (epoch %d, batch %d)", e.Loss, e.Step, e.Epoch, e.Batch)
	if e.LastStep >= 0 {
		fmt.Fprintf(&b, "; last finite loss %.6g at step %d", e.LastLoss, e.LastStep)
	} else {
		b.WriteString("; no finite loss before it")
	}
	if e.Checkpoint != "" {
		when := fmt.Sprintf("after epoch %d", e.CheckpointEpoch)
		if e.CheckpointEpoch == 0 {
			when = "the initial weights"
		}
		fmt.Fprintf(&b, "; the last good checkpoint %s (%s) is kept", e.Checkpoint, when)
	} else {
		b.WriteString("; no checkpoint had been written")
	}
	b.WriteString(" (lower the learning rate?)")
	return b.String()
}

// run is the state of one Run.
type run struct {
	*Trainer
	ctx       context.Context
	file      *logrus.Logger
	logf      *os.File
	console   *logrus.Logger
	bar       *progress
	st        State
	lastLR    float64
	lastStep  int // step of st.LastLoss, -1 if none
	ckptEpoch int // epochs done at the last checkpoint, -1 if none
	start     time.Time
	lastPlot  time.Time
}

func (r *run) path(name string) string { return filepath.Join(r.opts.Dir, name) }

func (r *run) ckptPath() string { return filepath.Join(r.opts.Dir, CheckpointDir, LastCheckpoint) }

// CheckpointCandidates lists the checkpoints of a run directory a resume
// may start from, newest first: last, prev, then the kept epoch-NNNN
// copies from the highest epoch down. Missing files are left out.
func CheckpointCandidates(dir string) []string {
	ckdir := filepath.Join(dir, CheckpointDir)
	var out []string
	for _, name := range []string{LastCheckpoint, PrevCheckpoint} {
		if _, err := os.Stat(filepath.Join(ckdir, name)); err == nil {
			out = append(out, filepath.Join(ckdir, name))
		}
	}
	kept, _ := filepath.Glob(filepath.Join(ckdir, "epoch-[0-9]*.safetensors"))
	sort.Sort(sort.Reverse(sort.StringSlice(kept)))
	return append(out, kept...)
}

// HasCheckpoint says whether a run directory holds a checkpoint to resume.
func HasCheckpoint(dir string) bool { return len(CheckpointCandidates(dir)) > 0 }

func (r *run) log(level logrus.Level, fields logrus.Fields, msg string, console bool) {
	r.file.WithFields(fields).Log(level, msg)
	if console && r.console != nil {
		r.bar.clear()
		r.console.WithFields(fields).Log(level, msg)
	}
}

// Run trains until the configured epochs or iterations are done, the loss
// diverges (*DivergedError), or ctx is cancelled: cancellation is checked
// between steps and saves a checkpoint, from which Options.Resume continues.
func (t *Trainer) Run(ctx context.Context) (res Result, err error) {
	r := &run{Trainer: t, ctx: ctx, lastStep: -1, ckptEpoch: -1, start: time.Now()}
	r.console = t.opts.Logger
	if err := os.MkdirAll(filepath.Join(t.opts.Dir, CheckpointDir), 0o755); err != nil {
		return Result{}, fmt.Errorf("run directory: %w", err)
	}
	if err := r.begin(); err != nil {
		return Result{}, err
	}
	if sb, ok := t.be.(StatefulBackend); ok {
		if err := sb.SetBackendState(r.st.Backend); err != nil {
			r.logf.Close()
			return Result{}, fmt.Errorf("%s: restore its state: %w", t.be.Name(), err)
		}
	}
	if err := t.be.Load(); err != nil {
		r.logf.Close()
		return Result{}, fmt.Errorf("%s: load the model: %w", t.be.Name(), err)
	}
	if !t.opts.Resume {
		// The starting point is a checkpoint too, so even the first
		// epoch's has a previous one to fall back to. The backend has just
		// loaded the graph's values: nothing to sync back.
		if err := r.writeCheckpoint(); err != nil {
			r.logf.Close()
			return Result{}, err
		}
	}
	defer func() {
		if err != nil {
			r.log(logrus.ErrorLevel, logrus.Fields{"step": r.st.Step, "epoch": r.st.Epoch + 1}, err.Error(), false)
		}
		r.logf.Close()
	}()
	r.bar = newProgress(t.opts.Progress, sizeOf(t.trainData), t.cfg.BatchSize)
	defer r.bar.finish()
	for !r.done() {
		if err := r.epoch(); err != nil {
			r.writePlots(true)
			return Result{}, err
		}
	}
	return r.finish()
}

func (r *run) done() bool {
	return (r.cfg.Iterations > 0 && r.st.Step >= r.cfg.Iterations) || (r.cfg.Epochs > 0 && r.st.Epoch >= r.cfg.Epochs)
}

// begin opens the log and either starts a fresh run or restores the latest checkpoint.
func (r *run) begin() error {
	f, err := os.OpenFile(r.path(LogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("run log: %w", err)
	}
	r.logf = f
	r.file = logrus.New()
	r.file.SetOutput(f)
	r.file.SetFormatter(&logrus.JSONFormatter{})
	r.file.SetLevel(logrus.DebugLevel)
	commit := Commit()
	if r.opts.Resume {
		return r.resume(commit)
	}
	for _, name := range []string{r.ckptPath(), r.path(MetricsFile), r.path(ResultsFile)} {
		if _, err := os.Stat(name); err == nil {
			r.logf.Close()
			return fmt.Errorf("run directory %s already holds a run (%s exists): resume it or choose a new directory", r.opts.Dir, filepath.Base(name))
		}
	}
	r.cfg.Commit = commit
	if err := r.writeConfig(); err != nil {
		r.logf.Close()
		return err
	}
	r.st = State{Seed: r.cfg.Seed, ConfigHash: r.cfg.Hash(), Config: r.cfg, Identity: r.opts.Identity}
	r.log(logrus.InfoLevel, logrus.Fields{"dir": r.opts.Dir, "recipe": r.cfg.Recipe, "seed": r.cfg.Seed, "commit": commit,
		"config_hash": r.st.ConfigHash, "params": r.g.ParamCount(), "backend": r.be.Name()}, "run started", true)
	return nil
}

// writeConfig writes the run's resolved config as config.json.
func (r *run) writeConfig() error {
	b, err := json.MarshalIndent(r.cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("run config: %w", err)
	}
	return WriteBytesAtomic(r.path(ConfigFile), append(b, '\n'))
}

func (r *run) resume(commit string) error {
	removeStaleTemps(r.opts.Dir, filepath.Join(r.opts.Dir, CheckpointDir))
	st, path, err := r.loadLatest()
	if err != nil {
		r.logf.Close()
		return fmt.Errorf("resume: %w", err)
	}
	extended, err := checkResume(r.opts.Dir, st, r.cfg, r.opts.Identity)
	if err != nil {
		r.logf.Close()
		return err
	}
	if st.Config.Commit != commit {
		r.log(logrus.WarnLevel, logrus.Fields{"run_commit": st.Config.Commit, "commit": commit},
			"resuming with code from another commit; results may differ from an uninterrupted run", true)
	}
	r.cfg.Commit = st.Config.Commit
	if extended {
		r.log(logrus.InfoLevel, logrus.Fields{"epochs": fmt.Sprintf("%d -> %d", st.Config.Epochs, r.cfg.Epochs),
			"iterations": fmt.Sprintf("%d -> %d", st.Config.Iterations, r.cfg.Iterations)}, "run extended", true)
		if err := r.writeConfig(); err != nil {
			r.logf.Close()
			return err
		}
	}
	st.Config, st.ConfigHash, st.Identity = r.cfg, r.cfg.Hash(), r.opts.Identity
	r.st = st
	r.lastStep = st.Step - 1
	r.ckptEpoch = len(st.History)
	if len(st.History) > 0 {
		r.lastLR = st.History[len(st.History)-1].LR
	}
	if st.Batch > 0 && st.Step > 0 { // mid-epoch: the epoch's record needs its last step's rate even if no step is left
		r.lastLR = r.sched.LR(Point{Iter: st.Step - 1, Epoch: st.Epoch})
	}
	r.log(logrus.InfoLevel, logrus.Fields{"dir": r.opts.Dir, "epoch": st.Epoch + 1, "batch": st.Batch, "step": st.Step,
		"checkpoint": path, "backend": r.be.Name()}, "run resumed", true)
	return nil
}

// loadLatest restores the newest checkpoint that verifies. A corrupt or
// unreadable one is reported as a warning naming the file and what failed,
// and the next older one is tried; any other error (a checkpoint of
// another network) stops at once, since an older file would not fit
// either.
func (r *run) loadLatest() (State, string, error) {
	cands := CheckpointCandidates(r.opts.Dir)
	if len(cands) == 0 {
		return State{}, "", fmt.Errorf("no checkpoint in %s", filepath.Join(r.opts.Dir, CheckpointDir))
	}
	var failed []string
	for _, path := range cands {
		st, err := LoadCheckpoint(path, r.g, r.opt)
		var corrupt *CorruptCheckpointError
		if errors.As(err, &corrupt) {
			failed = append(failed, err.Error())
			r.log(logrus.WarnLevel, logrus.Fields{"checkpoint": path, "error": corrupt.Err.Error()},
				"checkpoint failed verification; trying the previous one", true)
			continue
		}
		if err != nil {
			return State{}, "", err
		}
		if len(failed) > 0 {
			r.log(logrus.WarnLevel, logrus.Fields{"checkpoint": path, "epoch": st.Epoch, "batch": st.Batch},
				"resuming from an older checkpoint; the work after it is redone", true)
		}
		return st, path, nil
	}
	return State{}, "", fmt.Errorf("no checkpoint in %s verifies (%s): delete the directory %s to restart the run from scratch, or train into a new --out",
		r.opts.Dir, strings.Join(failed, "; "), filepath.Join(r.opts.Dir, CheckpointDir))
}

// removeStaleTemps deletes the temporary files of writes a crash cut short
// (WriteFileAtomic's ".<name>.tmp-*"); they are never read.
func removeStaleTemps(dirs ...string) {
	for _, d := range dirs {
		stale, _ := filepath.Glob(filepath.Join(d, ".*.tmp-*"))
		for _, f := range stale {
			os.Remove(f)
		}
	}
}

// pad marks rows n and beyond of the batch as unlabelled and zeroes them.
func (t *Trainer) pad(n int) {
	if n >= t.batch {
		return
	}
	switch t.x.Dtype() {
	case tensor.Float32:
		clear(t.x.Float32s()[n*t.rowN:])
	default:
		clear(t.x.Float64s()[n*t.rowN:])
	}
	switch t.y.Dtype() {
	case tensor.Int64:
		for i, ys := n, t.y.Int64s(); i < t.batch; i++ {
			ys[i] = -1
		}
	case tensor.Int32:
		for i, ys := n, t.y.Int32s(); i < t.batch; i++ {
			ys[i] = -1
		}
	default:
		for i, ys := n, t.y.Ints(); i < t.batch; i++ {
			ys[i] = -1
		}
	}
}

func (t *Trainer) next(it Batches) (int, bool, error) {
	n, ok, err := it.Next(t.x, t.y)
	if err != nil || !ok {
		return 0, false, err
	}
	if n <= 0 || n > t.batch {
		return 0, false, fmt.Errorf("data source returned a batch of %d examples; want 1 to %d", n, t.batch)
	}
	t.pad(n)
	return n, true, nil
}

func (t *Trainer) accumulate(acc *Running, n int, p Pass) {
	acc.Examples += n
	w := n
	if p.Scored {
		w = p.Count
		acc.Scored += w
		acc.Correct1 += p.Correct1
		acc.Correct5 += p.Correct5
	}
	acc.LossSum += p.Loss * float64(w)
	acc.Weight += w
}

// epoch trains (the rest of) epoch r.st.Epoch, evaluates and checkpoints.
func (r *run) epoch() error {
	e := r.st.Epoch
	it := r.trainData.Epoch(e)
	defer it.Close()
	for b := 0; b < r.st.Batch; b++ { // resuming mid-epoch: replay the order
		if _, ok, err := r.next(it); err != nil || !ok {
			return fmt.Errorf("resume: epoch %d: the data source gave %d batches, the checkpoint had trained %d (err: %v)", e+1, b, r.st.Batch, err)
		}
	}
	began := time.Now()
	prior := r.st.Running.Seconds
	r.bar.startEpoch(e, r.cfg.Epochs, r.st.Running.Examples)
	elapsed := func() float64 { return prior + time.Since(began).Seconds() }
	every := r.opts.LogEvery
	if every <= 0 {
		every = 50
		if n := sizeOf(r.trainData); n > 0 {
			every = max(1, n/r.batch/10)
		}
	}
	for {
		if err := r.ctx.Err(); err != nil {
			return r.interrupted(err, elapsed())
		}
		if r.cfg.Iterations > 0 && r.st.Step >= r.cfg.Iterations {
			break
		}
		n, ok, err := r.next(it)
		if err != nil {
			return fmt.Errorf("epoch %d, batch %d: training data: %w", e+1, r.st.Batch+1, err)
		}
		if !ok {
			break
		}
		lr := r.sched.LR(Point{Iter: r.st.Step, Epoch: e})
		p, err := r.be.Train(r.x, r.y, lr)
		if err != nil {
			return fmt.Errorf("step %d (epoch %d, batch %d): %w", r.st.Step, e+1, r.st.Batch+1, err)
		}
		loss := p.Loss
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return r.diverged(loss)
		}
		r.accumulate(&r.st.Running, n, p)
		r.st.LastLoss, r.lastStep, r.lastLR = loss, r.st.Step, lr
		r.st.Step++
		r.st.Batch++
		r.bar.add(n)
		if r.st.Batch%every == 0 {
			m := r.st.Running.metrics()
			r.log(logrus.InfoLevel, logrus.Fields{"epoch": e + 1, "batch": r.st.Batch, "step": r.st.Step, "loss": loss,
				"train_loss": m.Loss, "train_top1_err": jsonSafe(m.Top1Err), "lr": lr,
				"images_per_sec": float64(r.st.Running.Examples) / max(elapsed(), 1e-9)}, "progress", !r.bar.active())
		}
		if r.opts.OnStep != nil {
			r.opts.OnStep(r.st.Step, loss)
		}
	}
	if r.st.Batch == 0 {
		return fmt.Errorf("epoch %d: the training data gave no batches", e+1)
	}
	seconds := elapsed()
	r.st.Running.Seconds = seconds
	test, err := r.evaluate()
	if err != nil {
		return fmt.Errorf("epoch %d: %w", e+1, err)
	}
	em := EpochMetrics{Epoch: e + 1, Step: r.st.Step, LR: r.lastLR, Train: r.st.Running.metrics(), Test: test,
		Seconds: seconds, ImagesPerSec: float64(r.st.Running.Examples) / max(seconds, 1e-9)}
	r.st.History = append(r.st.History, em)
	r.st.Epoch, r.st.Batch, r.st.Running = e+1, 0, Running{}
	if err := r.checkpoint(); err != nil {
		return err
	}
	if err := WriteBytesAtomic(r.path(MetricsFile), MetricsCSV(r.st.History)); err != nil {
		return err
	}
	r.bar.endEpoch()
	r.writePlots(false)
	fields := logrus.Fields{"epoch": em.Epoch, "step": em.Step, "lr": em.LR,
		"train_loss": jsonSafe(em.Train.Loss), "train_top1_err": jsonSafe(em.Train.Top1Err), "train_top5_err": jsonSafe(em.Train.Top5Err),
		"test_loss": jsonSafe(em.Test.Loss), "test_top1_err": jsonSafe(em.Test.Top1Err), "test_top5_err": jsonSafe(em.Test.Top5Err),
		"seconds": em.Seconds, "images_per_sec": em.ImagesPerSec}
	if rep, ok := r.be.(EpochReporter); ok {
		extra, err := rep.EpochFields()
		if err != nil {
			return fmt.Errorf("epoch %d: %s: %w", e+1, r.be.Name(), err)
		}
		for k, v := range extra {
			fields[k] = v
		}
	}
	r.log(logrus.InfoLevel, fields, "epoch done", true)
	if r.opts.OnEpoch != nil {
		r.opts.OnEpoch(em)
	}
	return nil
}

// jsonSafe keeps NaN out of the JSON log (logrus cannot encode it).
func jsonSafe(x float64) any {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return x
}

// evaluate runs the test data in inference mode.
func (r *run) evaluate() (Metrics, error) {
	if r.testData == nil {
		return noMetrics(), nil
	}
	r.log(logrus.DebugLevel, logrus.Fields{"epoch": r.st.Epoch + 1}, "evaluating", false)
	it := r.testData.Epoch(0)
	defer it.Close()
	var acc Running
	for b := 1; ; b++ {
		n, ok, err := r.next(it)
		if err != nil {
			return Metrics{}, fmt.Errorf("test data, batch %d: %w", b, err)
		}
		if !ok {
			break
		}
		p, err := r.be.Infer(r.x, r.y)
		if err != nil {
			return Metrics{}, fmt.Errorf("evaluation, batch %d: %w", b, err)
		}
		r.accumulate(&acc, n, p)
	}
	return acc.metrics(), nil
}

// checkpoint syncs the backend's values back and writes the latest
// checkpoint and, every CheckpointEvery epochs, a kept copy.
func (r *run) checkpoint() error {
	if err := r.be.Sync(); err != nil {
		return fmt.Errorf("checkpoint: %s: %w", r.be.Name(), err)
	}
	if sb, ok := r.be.(StatefulBackend); ok {
		st, err := sb.BackendState()
		if err != nil {
			return fmt.Errorf("checkpoint: %s: %w", r.be.Name(), err)
		}
		r.st.Backend = st
	}
	return r.writeCheckpoint()
}

// writeCheckpoint rotates the graph's and optimizer's values (as they are
// on the host) into the latest checkpoint, keeping the one before.
func (r *run) writeCheckpoint() error {
	prev := filepath.Join(r.opts.Dir, CheckpointDir, PrevCheckpoint)
	r.log(logrus.DebugLevel, logrus.Fields{"checkpoint": r.ckptPath(), "epoch": r.st.Epoch, "batch": r.st.Batch}, "writing checkpoint", false)
	if err := RotateCheckpoint(r.ckptPath(), prev, r.g, r.opt, r.st); err != nil {
		return fmt.Errorf("%w (the previous checkpoints are intact)", err)
	}
	r.log(logrus.DebugLevel, logrus.Fields{"checkpoint": r.ckptPath()}, "checkpoint written", false)
	if r.st.Batch == 0 {
		r.ckptEpoch = r.st.Epoch
		if k := r.cfg.CheckpointEvery; k > 0 && r.st.Epoch > 0 && r.st.Epoch%k == 0 {
			name := filepath.Join(r.opts.Dir, CheckpointDir, fmt.Sprintf("epoch-%04d.safetensors", r.st.Epoch))
			if err := SaveCheckpoint(name, r.g, r.opt, r.st); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *run) interrupted(cause error, seconds float64) error {
	r.st.Running.Seconds = seconds
	if err := r.checkpoint(); err != nil {
		return fmt.Errorf("training interrupted at step %d (epoch %d, batch %d) and the checkpoint failed: %w (interrupted by: %v)",
			r.st.Step, r.st.Epoch+1, r.st.Batch, err, cause)
	}
	if r.st.Batch > 0 {
		r.ckptEpoch = -1 // mid-epoch checkpoint
	}
	r.bar.clear()
	return fmt.Errorf("training interrupted at step %d (epoch %d, batch %d); checkpoint saved to %s, resume to continue: %w",
		r.st.Step, r.st.Epoch+1, r.st.Batch, r.ckptPath(), cause)
}

func (r *run) diverged(loss float64) error {
	e := &DivergedError{Step: r.st.Step, Epoch: r.st.Epoch + 1, Batch: r.st.Batch + 1, Loss: loss,
		LastLoss: r.st.LastLoss, LastStep: r.lastStep, CheckpointEpoch: r.ckptEpoch}
	if _, err := os.Stat(r.ckptPath()); err == nil {
		e.Checkpoint = r.ckptPath()
	}
	r.bar.clear()
	return e
}

// writePlots redraws the curves at most once a minute unless forced.
func (r *run) writePlots(force bool) {
	if len(r.st.History) == 0 || (!force && !r.lastPlot.IsZero() && time.Since(r.lastPlot) < time.Minute) {
		return
	}
	r.lastPlot = time.Now()
	title := r.cfg.Recipe
	if title == "" {
		title = filepath.Base(r.opts.Dir)
	}
	for _, p := range []struct {
		name string
		draw func(io.Writer, string, []EpochMetrics) (bool, error)
	}{{LossPlotFile, PlotLoss}, {ErrorPlotFile, PlotError}} {
		var buf bytes.Buffer
		ok, err := p.draw(&buf, title, r.st.History)
		if err == nil && ok {
			err = WriteBytesAtomic(r.path(p.name), buf.Bytes())
		}
		if err != nil {
			r.log(logrus.WarnLevel, logrus.Fields{"plot": p.name, "error": err.Error()}, "plot failed", true)
		}
	}
}

func (r *run) finish() (Result, error) {
	if err := r.be.Sync(); err != nil {
		return Result{}, fmt.Errorf("%s: %w", r.be.Name(), err)
	}
	r.writePlots(true)
	res := Result{Recipe: r.cfg.Recipe, Seed: r.cfg.Seed, Commit: r.cfg.Commit, ConfigHash: r.cfg.Hash(), Identity: r.opts.Identity, Dir: r.opts.Dir,
		Epochs: len(r.st.History), Steps: r.st.Step, History: r.st.History, BestTestTop1Err: math.NaN()}
	for _, h := range r.st.History {
		res.Seconds += h.Seconds
		if x := h.Test.Top1Err; !math.IsNaN(x) && (math.IsNaN(res.BestTestTop1Err) || x < res.BestTestTop1Err) {
			res.BestTestTop1Err, res.BestEpoch = x, h.Epoch
		}
	}
	if n := len(r.st.History); n > 0 {
		res.Final = r.st.History[n-1]
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return res, fmt.Errorf("results: %w", err)
	}
	if err := WriteBytesAtomic(r.path(ResultsFile), append(b, '\n')); err != nil {
		return res, err
	}
	f := res.Final
	r.log(logrus.InfoLevel, logrus.Fields{"epochs": res.Epochs, "steps": res.Steps, "seconds": res.Seconds,
		"train_top1_err": jsonSafe(f.Train.Top1Err), "test_top1_err": jsonSafe(f.Test.Top1Err), "test_loss": jsonSafe(f.Test.Loss)}, "run finished", true)
	return res, nil
}
