package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/eraserelu/eraserelu/experiments"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// campaignFlags choose the campaign: the paper campaign, maybe some of its
// experiments, at a scale, with config fields laid over every job.
type campaignFlags struct {
	scale string
	only  []string
	set   []string
}

func (c *campaignFlags) add(f *pflag.FlagSet) {
	f.StringVar(&c.scale, "scale", "paper", "scale of every experiment: paper, or quick/smoke to try the campaign out")
	f.StringSliceVar(&c.only, "only", nil, "run only these experiments of the campaign (fig3c, table2, fig3a, table1), in the campaign's order")
	f.StringArrayVar(&c.set, "set", nil, "config field laid over every job, name=value (e.g. epochs=2); repeatable")
}

func (c *campaignFlags) campaign() (experiments.Campaign, error) {
	sc, err := experiments.ParseScale(c.scale)
	if err != nil {
		return experiments.Campaign{}, err
	}
	camp, err := experiments.PaperCampaign().WithScale(sc).Only(c.only)
	if err != nil {
		return experiments.Campaign{}, err
	}
	if len(c.set) > 0 {
		over := map[string]string{}
		for _, kv := range c.set {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return experiments.Campaign{}, fmt.Errorf("--set %q: want name=value, e.g. epochs=2", kv)
			}
			over[k] = v
		}
		for i := range camp.Entries {
			camp.Entries[i].Overrides = over
		}
	}
	if _, err := camp.Jobs(); err != nil {
		return experiments.Campaign{}, err
	}
	return camp, nil
}

func campaignCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "campaign run|pack|status",
		Short: "Spend a bounded slice of GPU time on the paper-scale experiments, resumable across calls (scripts/gpu-campaign.sh)",
		Long: `A campaign runs the jobs of paper-scale experiments in priority order
(fig3c on MNIST, table2 ResNet-56/110 on CIFAR-10, fig3a on CIFAR-10, table1's
ResNet-20 columns), several at once on one GPU (--jobs-per-gpu processes),
until its time budget; the unfinished jobs stop with a checkpoint in the
state directory and the next call resumes them exactly. "campaign pack"
writes results.tar.gz (the finished runs' metrics, results and config, laid
out as docs/runs/<campaign>/<experiment>/<job>/ for the repository, where
"eraserelu report docs/runs/<campaign>/<experiment>" merges them) and
state.tar.gz (what the next call resumes from, checkpoints up to a size).`,
	}
	cmd.AddCommand(campaignRunCommand(), campaignPackCommand(), campaignStatusCommand(), campaignWorkerCommand())
	return cmd
}

// packFlags say where a pack goes and how big its state may be.
type packFlags struct {
	out        string
	maxStateMB float64
}

func (p *packFlags) add(f *pflag.FlagSet, name, usage string) {
	f.StringVar(&p.out, name, "", usage)
	f.Float64Var(&p.maxStateMB, "max-state-mb", 6, "bound on state.tar.gz in MiB: unfinished runs' checkpoints beyond it restart next call "+
		"(a device call carries 64 MiB in all: the GPU binary and data sets take about 57)")
}

func (p *packFlags) pack(cmd *cobra.Command, camp experiments.Campaign, state string) error {
	jobs, err := camp.Jobs()
	if err != nil {
		return err
	}
	res, err := experiments.PackCampaign(state, p.out, experiments.PackOptions{
		ResultsPrefix: filepath.ToSlash(filepath.Join("docs", "runs", camp.Name)),
		MaxStateBytes: int64(p.maxStateMB * (1 << 20)), Order: jobs,
	})
	if err != nil {
		return fmt.Errorf("pack %s: %w", state, err)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "packed %s: %s %d finished runs (%.1f KiB), %s %d resumable (%.1f MiB)",
		p.out, experiments.ResultsArchive, res.Done, float64(res.ResultsBytes)/1024, experiments.StateArchive, len(res.Resumable), float64(res.StateBytes)/(1<<20))
	if res.Failed > 0 {
		fmt.Fprintf(w, ", %d failed", res.Failed)
	}
	if len(res.Dropped) > 0 {
		fmt.Fprintf(w, "; over --max-state-mb, restart next call: %s", strings.Join(res.Dropped, " "))
	}
	fmt.Fprintln(w)
	return nil
}

func campaignRunCommand() *cobra.Command {
	var cf campaignFlags
	var pf packFlags
	var dev deviceFlags
	var state, dataDir, restore, binary string
	var budget, margin, minStart time.Duration
	var slots int
	var retryFailed bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the campaign's jobs until done or the budget ends, K at a time; unfinished jobs checkpoint",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			camp, err := cf.campaign()
			if err != nil {
				return err
			}
			if _, err := dev.backend(); err != nil {
				return err
			}
			switch {
			case state == "":
				return fmt.Errorf("--state: a state directory is required")
			case slots < 1:
				return fmt.Errorf("--jobs-per-gpu %d: want >= 1", slots)
			case budget > 0 && margin >= budget:
				return fmt.Errorf("--margin %s must be shorter than --budget %s", margin, budget)
			}
			if restore != "" {
				if _, err := os.Stat(restore); err == nil {
					n, err := experiments.UnpackArchive(restore, state)
					if err != nil {
						return fmt.Errorf("--restore: %w", err)
					}
					fmt.Fprintf(cmd.OutOrStdout(), "restored %d files from %s\n", n, restore)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "no %s: a fresh campaign\n", restore)
				}
			}
			if err := os.MkdirAll(state, 0o755); err != nil {
				return fmt.Errorf("--state: %w", err)
			}
			jobs, err := camp.Jobs()
			if err != nil {
				return err
			}
			env := envFor(cmd, dataDir)
			jobs, missing := experiments.WithData(jobs, env.DataDir)
			for ds, err := range missing {
				fmt.Fprintf(cmd.OutOrStdout(), "skipped: the %s jobs (%v)\n", ds, err)
			}
			if binary == "" {
				if binary, err = os.Executable(); err != nil {
					return err
				}
			}
			w := worker{binary: binary, dataDir: env.DataDir, device: dev}
			opts := experiments.PoolOptions{Slots: slots, MinStart: minStart, Logger: env.Logger, RetryFailed: retryFailed}
			w.grace = margin / 2
			if budget > 0 {
				opts.Deadline = start.Add(budget - margin)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			outs := experiments.RunPool(ctx, state, jobs, w.launch, opts)
			started, failed := 0, 0
			for _, o := range outs {
				if o.Started {
					started++
				}
				if o.Started && o.Err != nil {
					failed++
					fmt.Fprintf(cmd.OutOrStdout(), "%s/%s failed: %v\n", o.Job.Experiment, o.Job.Job.ID, o.Err)
				}
			}
			sts, err := camp.Status(state)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "campaign %s: %d jobs run in this call (%d failed), %d at once, %s\n\n%s",
				camp.Name, started, failed, slots, time.Since(start).Round(time.Second), experiments.StatusTable(sts))
			if pf.out != "" {
				return pf.pack(cmd, camp, state)
			}
			return nil
		},
	}
	f := cmd.Flags()
	cf.add(f)
	pf.add(f, "pack", "after the run, write results.tar.gz and state.tar.gz into this directory")
	dev.add(f)
	f.StringVar(&state, "state", "", "state directory: <experiment>/<job>/ run directories with checkpoints")
	f.StringVar(&restore, "restore", "", "unpack this state.tar.gz (from the last call) into --state first, if it exists")
	f.StringVar(&dataDir, "data", "", "data directory (default: ../shared/datasets if present, else ./data)")
	f.DurationVar(&budget, "budget", 0, "wall time of the whole command, packing included (0: until every job is done)")
	f.DurationVar(&margin, "margin", 45*time.Second, "with --budget: running jobs are told to checkpoint and stop this long before the budget ends, leaving the rest for packing; "+
		"a job told to stop (budget or Ctrl-C) is killed half the margin later")
	f.DurationVar(&minStart, "min-start", 20*time.Second, "with --budget: start no job with less than this left before the stop")
	f.IntVar(&slots, "jobs-per-gpu", 1, "jobs trained at once (processes sharing the GPU)")
	f.BoolVar(&retryFailed, "retry-failed", false, "start failed jobs again (failed.txt in their run directory says why they failed)")
	f.StringVar(&binary, "worker-binary", "", "eraserelu binary that trains each job (default: this one)")
	return cmd
}

func campaignPackCommand() *cobra.Command {
	var cf campaignFlags
	var pf packFlags
	var state string
	cmd := &cobra.Command{
		Use:   "pack",
		Short: "Write results.tar.gz and state.tar.gz of a campaign's state directory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			camp, err := cf.campaign()
			if err != nil {
				return err
			}
			if state == "" || pf.out == "" {
				return fmt.Errorf("--state and --out are required")
			}
			return pf.pack(cmd, camp, state)
		},
	}
	f := cmd.Flags()
	cf.add(f)
	pf.add(f, "out", "directory the two archives are written into")
	f.StringVar(&state, "state", "", "the campaign's state directory")
	return cmd
}

func campaignStatusCommand() *cobra.Command {
	var cf campaignFlags
	cmd := &cobra.Command{
		Use:   "status DIR",
		Short: "How many jobs of each experiment are done, partial, failed or to do in DIR (a state directory, or docs/runs/<campaign>)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			camp, err := cf.campaign()
			if err != nil {
				return err
			}
			sts, err := camp.Status(args[0])
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), experiments.StatusTable(sts))
			return nil
		},
	}
	cf.add(cmd.Flags())
	return cmd
}

// worker starts one process per job (campaign worker), so K jobs share the
// GPU as K processes, each with its own CUDA context.
type worker struct {
	binary, dataDir string
	device          deviceFlags
	// grace is how long a job told to stop (SIGINT: it checkpoints) has
	// before it is killed (0: 30 s).
	grace time.Duration
}

func (w worker) args(job experiments.Job, dir string) ([]string, error) {
	b, err := json.Marshal(job)
	if err != nil {
		return nil, err
	}
	return append([]string{"campaign", "worker", "--dir", dir, "--job", string(b), "--data", w.dataDir}, w.device.args()...), nil
}

func (w worker) launch(ctx context.Context, job experiments.Job, dir string) error {
	runDir := filepath.Join(dir, job.ID)
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	args, err := w.args(job, dir)
	if err != nil {
		return err
	}
	log, err := os.OpenFile(filepath.Join(runDir, "worker.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	c := exec.CommandContext(ctx, w.binary, args...)
	c.Stdout, c.Stderr = log, log
	c.Cancel = func() error { return c.Process.Signal(os.Interrupt) }
	c.WaitDelay = w.grace
	if c.WaitDelay == 0 {
		c.WaitDelay = 30 * time.Second
	}
	// The worker dies with the thread that started it (workerAttr): a
	// killed campaign leaves no orphan on the GPU. So that thread must
	// live until the worker ends.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c.SysProcAttr = workerAttr()
	if err := c.Run(); err != nil {
		return fmt.Errorf("%s (see %s): %w", job.ID, filepath.Join(runDir, "worker.log"), err)
	}
	return nil
}

func campaignWorkerCommand() *cobra.Command {
	var dir, jobJSON, dataDir string
	var dev deviceFlags
	cmd := &cobra.Command{
		Use:    "worker",
		Short:  "Train one job of a campaign or of experiment --jobs-per-gpu (started by them)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var job experiments.Job
			if err := json.Unmarshal([]byte(jobJSON), &job); err != nil {
				return fmt.Errorf("--job: %w", err)
			}
			backend, err := dev.backend()
			if err != nil {
				return err
			}
			env := envFor(cmd, dataDir)
			env.Backend, env.Progress = backend, nil
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			_, err = experiments.RunJob(ctx, env, job, dir)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "experiment directory; the job trains in <dir>/<job id>")
	f.StringVar(&jobJSON, "job", "", "the job, as JSON")
	f.StringVar(&dataDir, "data", "", "data directory")
	dev.add(f)
	return cmd
}
