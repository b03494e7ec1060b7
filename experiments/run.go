package experiments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/eraserelu/eraserelu/train"
)

// RunOptions says how to run an experiment.
type RunOptions struct {
	Scale Scale
	Shard Shard
	// Out is the results root: the experiment writes Out/<name>/.
	Out string
	// Dataset, when set, replaces every job's data set (e.g. cifar10 where
	// CIFAR-100 is not available); the report says so.
	Dataset string
	// Launch, when set, trains each job (in its own process: see
	// Launcher), JobsPerGPU of them at once; nil trains them one by one in
	// this process.
	Launch     Launcher
	JobsPerGPU int
}

// Run runs the shard's jobs (or the direct experiment), then, when every
// job of the experiment has finished, writes Out/<name>/report.md and
// returns its Markdown. A partial shard returns "" and no error.
func Run(ctx context.Context, env Env, e *Experiment, o RunOptions) (string, error) {
	dir := filepath.Join(o.Out, e.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("results directory: %w", err)
	}
	if e.Direct != nil {
		md, err := e.Direct(ctx, env, o.Scale, dir)
		if err != nil {
			return "", err
		}
		return md, writeReport(dir, md)
	}
	jobs, err := e.Jobs(o.Scale)
	if err != nil {
		return "", err
	}
	if o.Dataset != "" {
		for i := range jobs {
			jobs[i].Dataset = o.Dataset
		}
	}
	if err := runShard(ctx, env, e.Name, o, o.Shard.Select(jobs)); err != nil {
		return "", err
	}
	results, err := Collect(dir)
	if err != nil {
		return "", err
	}
	if len(results) < len(jobs) {
		return "", nil // other shards still to come; `eraserelu report` merges
	}
	return Report(e, dir)
}

func runShard(ctx context.Context, env Env, name string, o RunOptions, jobs []Job) error {
	if o.Launch == nil {
		_, err := RunJobs(ctx, env, jobs, filepath.Join(o.Out, name))
		return err
	}
	cjs := make([]CampaignJob, len(jobs))
	for i, j := range jobs {
		cjs[i] = CampaignJob{Experiment: name, Job: j}
	}
	var failed []string
	for _, out := range RunPool(ctx, o.Out, cjs, o.Launch, PoolOptions{Slots: o.JobsPerGPU, RetryFailed: true, Logger: env.Logger}) {
		if out.Err != nil {
			failed = append(failed, out.Err.Error())
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d jobs failed: %s", len(failed), len(jobs), strings.Join(failed, "; "))
	}
	return nil
}

// Report builds the experiment's report from the finished jobs under dir
// (all shards), writes dir/report.md and returns it.
func Report(e *Experiment, dir string) (string, error) {
	if e.Report == nil {
		b, err := os.ReadFile(filepath.Join(dir, "report.md"))
		if err != nil {
			return "", fmt.Errorf("%s has no job results to merge: %w", e.Name, err)
		}
		return string(b), nil
	}
	results, err := Collect(dir)
	if err != nil {
		return "", err
	}
	if len(results) == 0 {
		return "", fmt.Errorf("no finished jobs under %s", dir)
	}
	md, err := e.Report(dir, results)
	if err != nil {
		return "", err
	}
	if results[0].Job.Dataset != "" {
		md += fmt.Sprintf("\nData set: %s.\n", results[0].Job.Dataset)
	}
	return md, writeReport(dir, md)
}

func writeReport(dir, md string) error {
	return writeFile(filepath.Join(dir, "report.md"), []byte(md))
}

// ReportRuns summarises plain run directories (from `eraserelu train`):
// each directory is a run, or holds runs one level down. Runs whose
// config differs only in the seed are one row (mean ± std over seeds).
func ReportRuns(dirs []string) (string, error) {
	type row struct {
		name string
		rs   []train.Result
	}
	var rows []*row
	byKey := map[string]*row{}
	add := func(dir string) (bool, error) {
		r, err := readResult(dir)
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		cfg, err := train.ReadRunConfig(dir)
		if err != nil {
			return false, err
		}
		cfg.Seed, cfg.Commit = 0, ""
		name := filepath.Base(dir)
		if b, err := os.ReadFile(filepath.Join(dir, jobFile)); err == nil {
			var j Job
			if json.Unmarshal(b, &j) == nil {
				name = fmt.Sprintf("%s %s erase=%g", j.Arch, j.Dataset, j.Erase)
				if j.Location != "" && j.Location != "last" || j.Replacement != "" && j.Replacement != "identity" {
					name += fmt.Sprintf(" (%s, %s)", j.Location, j.Replacement)
				}
			}
		}
		key := name + "|" + cfg.Hash()
		rw, ok := byKey[key]
		if !ok {
			rw = &row{name: name}
			byKey[key] = rw
			rows = append(rows, rw)
		}
		rw.rs = append(rw.rs, r)
		return true, nil
	}
	for _, d := range dirs {
		ok, err := add(d)
		if err != nil {
			return "", err
		}
		if ok {
			continue
		}
		entries, err := os.ReadDir(d)
		if err != nil {
			return "", fmt.Errorf("report %s: %w", d, err)
		}
		found := false
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			ok, err := add(filepath.Join(d, e.Name()))
			if err != nil {
				return "", err
			}
			found = found || ok
		}
		if !found {
			return "", fmt.Errorf("report %s: no finished run (results.json) here or one level down", d)
		}
	}
	var names []string
	var sums []train.Summary
	for _, r := range rows {
		names = append(names, r.name)
		sums = append(sums, train.Summarize(r.rs))
	}
	return train.SummaryTable(names, sums), nil
}
