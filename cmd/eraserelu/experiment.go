package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/eraserelu/eraserelu/experiments"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
)

// envFor is the experiment environment of a command: the data directory
// (default: ../shared/datasets when present, else ./data), logs on stderr
// and progress bars when stderr is a terminal.
func envFor(cmd *cobra.Command, dataDir string) experiments.Env {
	if dataDir == "" {
		dataDir = "data"
		if st, err := os.Stat(filepath.Join("..", "shared", "datasets")); err == nil && st.IsDir() {
			dataDir = filepath.Join("..", "shared", "datasets")
		}
	}
	log := logrus.New()
	log.SetOutput(cmd.ErrOrStderr())
	return experiments.Env{DataDir: dataDir, Logger: log, Progress: cmd.ErrOrStderr()}
}

// mainJob is the README's main job: Figure 3(c) and Figure 4 at quick scale.
var mainJob = []string{"fig3c", "fig4"}

func experimentCommand() *cobra.Command {
	var scale, shard, out, dataDir, dataset, planKind, results, binary, image string
	var shards, gpus int
	var names []string
	var dev deviceFlags
	var list strings.Builder
	for _, e := range experiments.Catalog() {
		names = append(names, e.Name)
		fmt.Fprintf(&list, "  %-6s %s\n", e.Name, e.Title)
	}
	fmt.Fprintf(&list, "  %-6s %s\n", "main", "the README's main job: fig3c and fig4 at quick scale")
	cmd := &cobra.Command{
		Use:   "experiment NAME",
		Short: "Run one of the paper's figures or tables (" + strings.Join(names, ", ") + ", or main)",
		Long: `Run an experiment at a scale: smoke (seconds), quick (minutes on 2 CPU cores)
or paper (the paper's settings). Experiments:

` + list.String() + `
With --shard i/n only that slice of the jobs runs; "eraserelu report" merges the shards.
With --plan slurm|k8s nothing runs: a job-array script or Indexed Job manifest is
printed, after the experiment, scale and shard count are checked.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			backend, err := dev.backend()
			if err != nil {
				return err
			}
			sc, err := experiments.ParseScale(scale)
			if err != nil {
				return err
			}
			todo := []string{args[0]}
			if args[0] == "main" {
				todo, sc = mainJob, experiments.Quick
			}
			if planKind != "" {
				pc := experiments.PlanConfig{Experiment: args[0], Scale: sc, Shards: shards, Results: results, Binary: binary, Image: image,
					GPUs: gpus, Data: dataDir, Dataset: dataset}
				switch planKind {
				case "slurm":
					return experiments.WriteSlurm(cmd.OutOrStdout(), pc)
				case "k8s":
					return experiments.WriteK8s(cmd.OutOrStdout(), pc)
				}
				return fmt.Errorf("--plan %q: valid plans are slurm, k8s", planKind)
			}
			sh, err := experiments.ParseShard(shard)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			env := envFor(cmd, dataDir)
			env.Backend = backend
			for _, name := range todo {
				e, err := experiments.Find(name)
				if err != nil {
					return err
				}
				start := time.Now()
				env.Logger.Infof("experiment %s (%s scale, shard %s) -> %s", name, sc, sh, filepath.Join(out, name))
				md, err := experiments.Run(ctx, env, e, experiments.RunOptions{Scale: sc, Shard: sh, Out: out, Dataset: dataset})
				if err != nil {
					return fmt.Errorf("experiment %s: %w", name, err)
				}
				if md == "" {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: shard %s done; merge all shards with: eraserelu report %s\n", name, sh, filepath.Join(out, name))
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s\n(%s in %s; report and plots in %s)\n\n", md, name, time.Since(start).Round(time.Second), filepath.Join(out, name))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&scale, "scale", "quick", "smoke, quick or paper")
	f.StringVar(&shard, "shard", "", "run only slice i/n of the jobs, e.g. 0/4")
	f.StringVar(&out, "out", "results", "results root; the experiment writes <out>/<name>/")
	f.StringVar(&dataDir, "data", "", "data directory (default: ../shared/datasets if present, else ./data)")
	f.StringVar(&dataset, "dataset", "", "replace every job's data set (e.g. cifar10 where CIFAR-100 is missing)")
	f.StringVar(&planKind, "plan", "", "print a cluster plan instead of running: slurm or k8s")
	f.IntVar(&shards, "shards", 8, "with --plan: number of shards")
	f.StringVar(&results, "results", "", "with --plan: results directory shared by all shards (k8s: a PersistentVolumeClaim name)")
	f.StringVar(&binary, "binary", "eraserelu", "with --plan slurm: path of the eraserelu binary on the cluster (with --gpus: the GPU build, make cuda-build)")
	f.StringVar(&image, "image", "eraserelu:latest", "with --plan k8s: container image holding eraserelu")
	f.IntVar(&gpus, "gpus", 0, "with --plan: GPUs per shard (0 or 1; with 1 each shard trains with --device cuda)")
	dev.add(f)
	return cmd
}

func reportCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "report DIR...",
		Short: "Tables and plots from results: an experiment's directory (all shards merged), or run directories of `eraserelu train`",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var runs []string
			for _, dir := range args {
				name := filepath.Base(filepath.Clean(dir))
				e, err := experiments.Find(name)
				if err != nil {
					runs = append(runs, dir)
					continue
				}
				md, err := experiments.Report(e, dir)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), md)
			}
			if len(runs) > 0 {
				md, err := experiments.ReportRuns(runs)
				if err != nil {
					return err
				}
				fmt.Fprint(cmd.OutOrStdout(), md)
			}
			return nil
		},
	}
}
