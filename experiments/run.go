package experiments

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
	if _, err := RunJobs(ctx, env, o.Shard.Select(jobs), dir); err != nil {
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
