package experiments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strconv"

	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/loaders"
	"github.com/eraserelu/eraserelu/pipeline"
	"github.com/eraserelu/eraserelu/train"
	"github.com/sirupsen/logrus"
)

// Job is one training run of an experiment.
type Job struct {
	// ID is unique within the experiment and names the job's run directory.
	ID string `json:"id"`
	// Group is the table cell or curve the job contributes to; the seeds of
	// one configuration share it.
	Group   string `json:"group"`
	Arch    string `json:"arch"`
	Dataset string `json:"dataset"`
	// Erase is the EraseReLU proportion (0: the original network).
	Erase float64 `json:"erase"`
	// Location is last, first or all; Replacement identity or prelu.
	Location    string `json:"location,omitempty"`
	Replacement string `json:"replacement,omitempty"`
	// EveryReLU extends the erase to the ReLUs outside modules (the stem's):
	// with Location all and Replacement prelu, Table 1's PReLU-all.
	EveryReLU bool `json:"every_relu,omitempty"`
	// AfterActivation converts a pre-activation net before erasing (section 3.1).
	AfterActivation bool `json:"after_activation,omitempty"`
	StochasticDepth bool `json:"stochastic_depth,omitempty"`
	// Dropout overrides the architecture's dropout rate (0: its default,
	// negative: none).
	Dropout float64 `json:"dropout,omitempty"`
	// Recipe names the training recipe; Overrides sets config fields on top
	// (by their JSON names, e.g. "epochs": "3").
	Recipe string `json:"recipe"`
	// Config is a JSON object of config fields laid over the recipe
	// (a --config file), before Overrides.
	Config    json.RawMessage   `json:"config,omitempty"`
	Overrides map[string]string `json:"overrides,omitempty"`
	// TrainPerClass and TestPerClass keep the first k images of each class
	// (0 keeps all); Fraction keeps a seeded random fraction of the
	// training set (the ImageNet subsets; 0 keeps all).
	// The fraction applies to the test (validation) set too, as the paper's
	// ImageNet subsets sample both.
	TrainPerClass int     `json:"train_per_class,omitempty"`
	TestPerClass  int     `json:"test_per_class,omitempty"`
	Fraction      float64 `json:"fraction,omitempty"`
	// Validation, when > 0, holds out that stratified fraction of the
	// training set, trains on the rest and evaluates on the held-out part
	// instead of the test set (the proportion selection's candidate runs).
	Validation float64 `json:"validation,omitempty"`
	// Selection, when set, chooses Erase by validation error first
	// (select.go); the finished job's Selection records the choice.
	Selection *Selection `json:"selection,omitempty"`
	Seed      uint64     `json:"seed"`
}

// Identity is what decides the job's results besides its training config
// (which the run records itself): a run directory resumed with other
// values is refused.
func (j Job) Identity() map[string]string {
	loc, repl := j.Location, j.Replacement
	if loc == "" {
		loc = "last" // the defaults JobNet applies
	}
	if repl == "" {
		repl = "identity"
	}
	return map[string]string{
		"arch": j.Arch, "dataset": j.Dataset, "erase": strconv.FormatFloat(j.Erase, 'g', -1, 64),
		"location": loc, "replacement": repl,
		"after_activation": strconv.FormatBool(j.AfterActivation), "stochastic_depth": strconv.FormatBool(j.StochasticDepth),
		"dropout":         strconv.FormatFloat(j.Dropout, 'g', -1, 64),
		"train_per_class": strconv.Itoa(j.TrainPerClass), "test_per_class": strconv.Itoa(j.TestPerClass),
		"fraction": strconv.FormatFloat(j.Fraction, 'g', -1, 64), "validation": strconv.FormatFloat(j.Validation, 'g', -1, 64),
		"every_relu": strconv.FormatBool(j.EveryReLU),
	}
}

// Env says where data sets are and how to report.
type Env struct {
	// DataDir holds the data sets: DataDir/mnist/*.gz, DataDir/cifar10-jpeg.tar.gz,
	// DataDir/cifar-10-batches-bin, DataDir/cifar-100-binary, DataDir/svhn, DataDir/imagenet.
	DataDir string
	Logger  *logrus.Logger
	// Progress is where progress bars go (a terminal), or nil.
	Progress io.Writer
	// Workers is the number of data-loading goroutines (0: 2).
	Workers int
	// Backend runs the training jobs' passes (nil: the CPU); see
	// train.Options.Backend.
	Backend train.BackendFactory

	// opened keeps the data sets RunJobs has opened, so the jobs of one
	// experiment decode a data set once.
	opened map[string]loaders.Dataset
}

// JobResult is a job with its finished run.
type JobResult struct {
	Job    Job
	Result train.Result
}

const jobFile = "job.json"

// datasetPath finds a data set under the data directory, in the official
// format first: CIFAR-10 falls back to the JPEG copy.
func datasetPath(dataDir, dataset string) (name, path string, err error) {
	candidates := map[string][][2]string{
		"mnist":    {{"mnist", "mnist"}},
		"cifar10":  {{"cifar10", "cifar-10-batches-bin"}, {"cifar10", "cifar-10-binary.tar.gz"}, {"cifar10-jpeg", "cifar10-jpeg.tar.gz"}},
		"cifar100": {{"cifar100", "cifar-100-binary"}, {"cifar100", "cifar-100-binary.tar.gz"}},
		"svhn":     {{"svhn", "svhn"}},
		"imagenet": {{"imagenet", "imagenet"}},
	}
	cs, ok := candidates[dataset]
	if !ok {
		return "", "", fmt.Errorf("unknown data set %q (valid: mnist, cifar10, cifar100, svhn, imagenet)", dataset)
	}
	var tried []string
	for _, c := range cs {
		p := filepath.Join(dataDir, c[1])
		if _, err := os.Stat(p); err == nil {
			return c[0], p, nil
		}
		tried = append(tried, p)
	}
	return "", "", fmt.Errorf("data set %s not found: put it at one of %v (official format; see docs/REPRODUCTION.md)", dataset, tried)
}

// RunJob trains one job into dir/<job id>, resuming it if a checkpoint is there.
func RunJob(ctx context.Context, env Env, job Job, dir string) (train.Result, error) {
	runDir := filepath.Join(dir, job.ID)
	if job.Selection != nil {
		sel, err := runSelection(ctx, env, job, dir)
		if err != nil {
			return train.Result{}, fmt.Errorf("job %s: %w", job.ID, err)
		}
		job.Selection, job.Erase = sel, sel.Chosen
	}
	cfg, err := train.RecipeConfig(job.Recipe)
	if err != nil {
		return train.Result{}, err
	}
	if len(job.Config) > 0 {
		if err := cfg.Overlay(job.Config); err != nil {
			return train.Result{}, fmt.Errorf("job %s: config: %w", job.ID, err)
		}
	}
	cfg.Seed = job.Seed
	for k, v := range job.Overrides {
		if err := cfg.Set(k, v); err != nil {
			return train.Result{}, fmt.Errorf("job %s: %w", job.ID, err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return train.Result{}, fmt.Errorf("job %s: %w", job.ID, err)
	}
	// Finished before with these settings: its result. With other settings
	// the trainer extends the run (more epochs) or refuses, naming them.
	if r, err := readResult(runDir); err == nil && r.ConfigHash == cfg.Hash() && maps.Equal(r.Identity, job.Identity()) {
		return r, nil
	}
	name, path, err := datasetPath(env.DataDir, job.Dataset)
	if err != nil {
		return train.Result{}, err
	}
	trainSet, testSet, err := openSplits(env, name, path, job)
	if err != nil {
		return train.Result{}, err
	}
	workers := env.Workers
	if workers == 0 {
		workers = 2
	}
	batcher := func(ds loaders.Dataset, training bool) (*loaders.Batcher, error) {
		norm, aug := loaders.Preset(name, training)
		return loaders.NewBatcher(ds, loaders.BatcherConfig{
			Batch: cfg.BatchSize, Shuffle: training, Seed: job.Seed, Workers: workers,
			DropLast: training, Normalize: norm, Augment: aug,
		})
	}
	trainB, err := batcher(trainSet, true)
	if err != nil {
		return train.Result{}, fmt.Errorf("job %s: %w", job.ID, err)
	}
	testB, err := batcher(testSet, false)
	if err != nil {
		return train.Result{}, fmt.Errorf("job %s: %w", job.ID, err)
	}
	c, h, w := trainB.OutShape()
	net, err := JobNet(job, trainSet.NumClasses(), cfg.BatchSize, [3]int{c, h, w})
	if err != nil {
		return train.Result{}, fmt.Errorf("job %s: %w", job.ID, err)
	}
	nw, err := pipeline.Compile(net)
	if err != nil {
		return train.Result{}, fmt.Errorf("job %s: %w", job.ID, err)
	}
	defer nw.Close()
	prog := nw.Program
	t, err := train.New(prog, cfg, train.WithSize(train.FromEpochs(trainB), trainSet.Len()), train.FromEpochs(testB), train.Options{
		Dir: runDir, Logger: env.Logger, Progress: env.Progress, Resume: train.HasCheckpoint(runDir), Backend: env.Backend,
		Identity: job.Identity(),
	})
	if err != nil {
		return train.Result{}, fmt.Errorf("job %s: %w", job.ID, err)
	}
	defer t.Close()
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return train.Result{}, err
	}
	if err := writeJSON(filepath.Join(runDir, jobFile), job); err != nil {
		return train.Result{}, err
	}
	res, err := t.Run(ctx)
	if err != nil {
		return train.Result{}, fmt.Errorf("job %s: %w", job.ID, err)
	}
	return res, nil
}

func (env Env) open(name, path string, training bool) (loaders.Dataset, error) {
	key := fmt.Sprintf("%s|%s|%v", name, path, training)
	if ds, ok := env.opened[key]; ok {
		return ds, nil
	}
	ds, err := loaders.Open(name, path, training)
	if err == nil && env.opened != nil {
		env.opened[key] = ds
	}
	return ds, err
}

func openSplits(env Env, name, path string, job Job) (trainSet, testSet loaders.Dataset, err error) {
	if trainSet, err = env.open(name, path, true); err != nil {
		return nil, nil, err
	}
	if testSet, err = env.open(name, path, false); err != nil {
		return nil, nil, err
	}
	if job.TrainPerClass > 0 {
		trainSet = loaders.FirstPerClass(trainSet, job.TrainPerClass)
	}
	if job.Fraction > 0 && job.Fraction < 1 {
		trainSet = loaders.RandomFraction(trainSet, job.Fraction, 2017)
		testSet = loaders.RandomFraction(testSet, job.Fraction, 2017)
	}
	if job.TestPerClass > 0 {
		testSet = loaders.FirstPerClass(testSet, job.TestPerClass)
	}
	if job.Validation > 0 {
		// One fixed split, so every candidate of a selection sees the same one.
		trainSet, testSet = loaders.Split(trainSet, job.Validation, 2017)
	}
	return trainSet, testSet, nil
}

// JobNet is the network a job trains, for data of the given classes and
// input shape in batches of batch.
func JobNet(job Job, classes, batch int, input [3]int) (pipeline.Net, error) {
	n := pipeline.Net{Arch: job.Arch, Classes: classes, Batch: batch, Input: input, Seed: job.Seed,
		AfterActivation: job.AfterActivation, StochasticDepth: job.StochasticDepth, Dropout: job.Dropout}
	if job.Erase == 0 && job.Replacement == "" {
		return n, nil
	}
	loc, err := erase.ParseLocation(job.Location)
	if err != nil {
		return n, err
	}
	repl, err := erase.ParseReplacement(job.Replacement)
	if err != nil {
		return n, err
	}
	n.Erase = &erase.Options{Proportion: job.Erase, Location: loc, Replacement: repl, OutsideModules: job.EveryReLU}
	return n, nil
}

// RunJobs runs the jobs of one shard in order; a finished job is skipped.
func RunJobs(ctx context.Context, env Env, jobs []Job, dir string) ([]JobResult, error) {
	if env.opened == nil {
		env.opened = map[string]loaders.Dataset{}
	}
	var out []JobResult
	for i, j := range jobs {
		if env.Logger != nil {
			env.Logger.WithFields(logrus.Fields{"job": j.ID, "n": i + 1, "of": len(jobs)}).Info("job")
		}
		r, err := RunJob(ctx, env, j, dir)
		if err != nil {
			return out, err
		}
		out = append(out, JobResult{Job: j, Result: r})
	}
	return out, nil
}

// Collect reads every finished job under dir (the run directories of all
// shards), in job-ID order.
func Collect(dir string) ([]JobResult, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read results %s: %w", dir, err)
	}
	var out []JobResult
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		runDir := filepath.Join(dir, e.Name())
		job, err := readJob(runDir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		r, err := readResult(runDir)
		if errors.Is(err, os.ErrNotExist) {
			continue // unfinished
		}
		if err != nil {
			return nil, err
		}
		out = append(out, JobResult{Job: job, Result: r})
	}
	return out, nil
}

// readJob reads the job a run directory was trained for.
func readJob(runDir string) (Job, error) {
	var job Job
	b, err := os.ReadFile(filepath.Join(runDir, jobFile))
	if err != nil {
		return job, err
	}
	if err := json.Unmarshal(b, &job); err != nil {
		return job, fmt.Errorf("%s: %w", filepath.Join(runDir, jobFile), err)
	}
	return job, nil
}

func readResult(runDir string) (train.Result, error) {
	var r train.Result
	b, err := os.ReadFile(filepath.Join(runDir, train.ResultsFile))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s: %w", filepath.Join(runDir, train.ResultsFile), err)
	}
	return r, nil
}

func writeFile(path string, b []byte) error { return train.WriteBytesAtomic(path, b) }

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return train.WriteBytesAtomic(path, append(b, '\n'))
}

func pct(p float64) string { return strconv.FormatFloat(100*p, 'f', -1, 64) + "%" }
