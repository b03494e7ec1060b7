package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"

	"github.com/eraserelu/eraserelu/experiments"
	"github.com/eraserelu/eraserelu/train"
	"github.com/spf13/cobra"
)

// jobFlags are the flags that describe one training run, shared by
// `eraserelu train` and `eraserelu select`.
type jobFlags struct {
	job                      experiments.Job
	out, dataDir, configFile string
	dev                      deviceFlags
}

func (jf *jobFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	job := &jf.job
	f.StringVar(&job.Arch, "arch", "resnet-20", "architecture (see: eraserelu arch list)")
	f.StringVar(&job.Dataset, "dataset", "cifar10", "data set: mnist, cifar10, cifar100, svhn, imagenet")
	f.StringVar(&jf.dataDir, "data", "", "data directory (default: ../shared/datasets if present, else ./data)")
	f.StringVar(&job.Location, "location", "last", "which ReLU of a module to erase: last, first, all")
	f.StringVar(&job.Replacement, "replacement", "identity", "what replaces it: identity, prelu")
	f.BoolVar(&job.EveryReLU, "every-relu", false, "also erase/replace the ReLUs outside modules (the stem's); with --location all --replacement prelu: Table 1's PReLU-all")
	f.BoolVar(&job.AfterActivation, "after-activation", false, "convert a pre-activation net to after-activation first (section 3.1)")
	f.BoolVar(&job.StochasticDepth, "stochastic-depth", false, "stochastic depth (Huang et al.) on residual nets")
	f.Float64Var(&job.Dropout, "dropout", 0, "dropout rate of the architecture (0: its default, negative: none)")
	f.StringVar(&job.Recipe, "recipe", "he-resnet", "training recipe: "+fmt.Sprint(train.RecipeNames()))
	f.IntVar(&job.TrainPerClass, "train-per-class", 0, "keep the first k training images of each class (0: all)")
	f.IntVar(&job.TestPerClass, "test-per-class", 0, "keep the first k test images of each class (0: all)")
	f.StringVar(&jf.configFile, "config", "", "JSON file of config fields laid over the recipe")
	f.StringVar(&jf.out, "out", "", "run directory")
	jf.dev.add(f)
	train.AddFlags(f)
}

// build completes the job from the flags the user set: config overrides,
// the seed, the --config file, the ID from --out. It returns the job and
// the directory that holds its run directory.
func (jf *jobFlags) build(cmd *cobra.Command) (experiments.Job, string, error) {
	job := jf.job
	if jf.out == "" {
		return job, "", fmt.Errorf("--out (the run directory) is required")
	}
	job.Overrides = map[string]string{}
	for _, f := range train.Fields() {
		fl := cmd.Flags().Lookup(f.Flag)
		if fl == nil || !fl.Changed {
			continue
		}
		if f.Name == "seed" {
			seed, err := strconv.ParseUint(fl.Value.String(), 10, 64)
			if err != nil {
				return job, "", fmt.Errorf("--seed: %q is not a non-negative integer", fl.Value.String())
			}
			job.Seed = seed
			continue
		}
		job.Overrides[f.Name] = fl.Value.String()
	}
	if jf.configFile != "" {
		b, err := os.ReadFile(jf.configFile)
		if err != nil {
			return job, "", fmt.Errorf("--config: %w", err)
		}
		if !json.Valid(b) {
			return job, "", fmt.Errorf("--config %s: not a JSON object", jf.configFile)
		}
		job.Config = b
	}
	abs, err := filepath.Abs(jf.out)
	if err != nil {
		return job, "", err
	}
	job.ID, job.Group = filepath.Base(abs), filepath.Base(abs)
	return job, filepath.Dir(abs), nil
}

// prepare is the run's environment (with the chosen device's backend), its
// job and the directory that holds its run directory.
func (jf *jobFlags) prepare(cmd *cobra.Command) (experiments.Env, experiments.Job, string, error) {
	backend, err := jf.dev.backend()
	if err != nil {
		return experiments.Env{}, experiments.Job{}, "", err
	}
	job, dir, err := jf.build(cmd)
	if err != nil {
		return experiments.Env{}, experiments.Job{}, "", err
	}
	env := envFor(cmd, jf.dataDir)
	env.Backend = backend
	return env, job, dir, nil
}

// trainCommand is `eraserelu train`: one training run.
func trainCommand() *cobra.Command {
	var jf jobFlags
	var erase float64
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train one architecture, with or without EraseReLU, into a run directory (resumed if it holds a checkpoint)",
		Example: `  eraserelu train --arch mlp-12 --dataset mnist --erase 0.5 --recipe mlp-mnist --epochs 3 --out runs/mlp-p50
  eraserelu train --arch resnet-110 --dataset cifar100 --erase 1 --recipe he-resnet-110 --out runs/r110-er
  bin/gpu/eraserelu train --device cuda --arch resnet-56 --dataset cifar10 --recipe he-resnet --out runs/r56`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, job, dir, err := jf.prepare(cmd)
			if err != nil {
				return err
			}
			job.Erase = erase
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			res, err := experiments.RunJob(ctx, env, job, dir)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d epochs, test top-1 error %.2f%%, top-5 %.2f%%, train top-1 error %.2f%% (%s)\n",
				jf.out, res.Epochs, res.Final.Test.Top1Err, res.Final.Test.Top5Err, res.Final.Train.Top1Err, filepath.Join(jf.out, train.ResultsFile))
			return nil
		},
	}
	cmd.Flags().Float64Var(&erase, "erase", 0, "proportion of modules with EraseReLU, in [0, 1]")
	jf.add(cmd)
	return cmd
}
