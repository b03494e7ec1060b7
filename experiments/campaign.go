package experiments

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/eraserelu/eraserelu/train"
	"github.com/sirupsen/logrus"
)

// A campaign spends bounded slices of accelerator time (one device call of a
// few minutes each) on paper-scale experiments: it runs the jobs of a
// priority-ordered list of experiments, several at once on one GPU, stops
// cleanly before its budget ends, and leaves the unfinished jobs'
// checkpoints in a state directory that the next call resumes from.
//
// The state directory has the layout of an experiment's results root
// (State/<experiment>/<job id>/ is a run directory), so `eraserelu report
// State/<experiment>` works on it, and so does it on the small copy of the
// finished runs that PackCampaign writes for the repository.

// CampaignEntry is one experiment of a campaign, at a scale, optionally
// restricted to some of its jobs.
type CampaignEntry struct {
	Experiment string
	Scale      Scale
	// Groups keeps only the jobs whose group starts with one of these
	// prefixes (none: every job).
	Groups []string
	// Dataset, when set, replaces every job's data set (as --dataset does).
	Dataset string
	// Overrides are config fields laid over every job's own.
	Overrides map[string]string
	// Why says what the entry adds to the evidence (shown by status).
	Why string
}

// Campaign is a named, priority-ordered list of experiments.
type Campaign struct {
	Name    string
	Entries []CampaignEntry
}

// PaperCampaign is the default campaign: the experiments that give the most
// evidence about EraseReLU per GPU-minute first (issue 15).
func PaperCampaign() Campaign {
	return Campaign{Name: "paper", Entries: []CampaignEntry{
		{Experiment: "fig3c", Scale: Paper, Why: "Figure 3(c) at paper scale: MLP-12 on all of MNIST, proportions 0-90%, 3 seeds"},
		{Experiment: "table2", Scale: Paper, Groups: []string{"resnet-56-cifar10-", "resnet-110-cifar10-"},
			Why: "Table 2 CIFAR-10 (JPEG copy) ResNet-56 and ResNet-110, original vs EraseReLU, 5 seeds, 64k iterations"},
		{Experiment: "fig3a", Scale: Paper, Groups: []string{"cifar10-"}, Why: "Figure 3(a) on CIFAR-10 (JPEG copy), 3 seeds"},
		{Experiment: "table1", Scale: Paper, Groups: []string{"resnet20-"}, Dataset: "cifar10",
			Why: "Table 1's ResNet-20 columns, on CIFAR-10 (JPEG copy) for lack of CIFAR-100"},
	}}
}

// WithScale returns the campaign with every entry at scale s (the tests
// run the paper campaign's shape at smoke scale). The group filters name
// paper-scale networks, so below paper scale every job of an entry runs.
func (c Campaign) WithScale(s Scale) Campaign {
	out := Campaign{Name: c.Name}
	for _, e := range c.Entries {
		e.Scale = s
		if s != Paper {
			e.Groups = nil
		}
		out.Entries = append(out.Entries, e)
	}
	return out
}

// Only keeps the entries of the named experiments, in the campaign's order.
func (c Campaign) Only(names []string) (Campaign, error) {
	if len(names) == 0 {
		return c, nil
	}
	out := Campaign{Name: c.Name}
	for _, n := range names {
		found := false
		for _, e := range c.Entries {
			if e.Experiment == n {
				found = true
			}
		}
		if !found {
			var have []string
			for _, e := range c.Entries {
				have = append(have, e.Experiment)
			}
			return Campaign{}, fmt.Errorf("--only %s: campaign %s has no such experiment (it has: %s)", n, c.Name, strings.Join(have, ", "))
		}
	}
	for _, e := range c.Entries {
		for _, n := range names {
			if e.Experiment == n {
				out.Entries = append(out.Entries, e)
			}
		}
	}
	return out, nil
}

// CampaignJob is one job of a campaign, with the experiment it belongs to.
type CampaignJob struct {
	Experiment string
	Job        Job
}

// Dir is the job's experiment directory under the state root (the job's
// run directory is Dir/<job id>).
func (cj CampaignJob) Dir(state string) string { return filepath.Join(state, cj.Experiment) }

// Jobs lists the campaign's jobs in priority order: entries in order, and
// within an entry by seed first, so that the first jobs to finish give a
// whole curve or table (every configuration, paired by seed) on one seed
// before a second seed starts.
func (c Campaign) Jobs() ([]CampaignJob, error) {
	var out []CampaignJob
	seen := map[string]bool{}
	for _, en := range c.Entries {
		e, err := Find(en.Experiment)
		if err != nil {
			return nil, fmt.Errorf("campaign %s: %w", c.Name, err)
		}
		if e.Jobs == nil {
			return nil, fmt.Errorf("campaign %s: %s is not made of training jobs", c.Name, e.Name)
		}
		jobs, err := e.Jobs(en.Scale)
		if err != nil {
			return nil, fmt.Errorf("campaign %s: %s: %w", c.Name, e.Name, err)
		}
		var kept []Job
		for _, j := range jobs {
			if !hasPrefix(j.Group, en.Groups) {
				continue
			}
			if en.Dataset != "" {
				j.Dataset = en.Dataset
			}
			if len(en.Overrides) > 0 {
				j.Overrides = withOverrides(j.Overrides, en.Overrides)
			}
			kept = append(kept, j)
		}
		if len(kept) == 0 {
			return nil, fmt.Errorf("campaign %s: %s at %s scale has no job in groups %v", c.Name, e.Name, en.Scale, en.Groups)
		}
		sort.SliceStable(kept, func(a, b int) bool { return kept[a].Seed < kept[b].Seed })
		for _, j := range kept {
			key := e.Name + "/" + j.ID
			if seen[key] {
				return nil, fmt.Errorf("campaign %s: job %s listed twice", c.Name, key)
			}
			seen[key] = true
			out = append(out, CampaignJob{Experiment: e.Name, Job: j})
		}
	}
	return out, nil
}

// WithData keeps the jobs whose data set is under dataDir and says, per
// missing data set, why the others are left for a call that has it (rather
// than failing them all).
func WithData(jobs []CampaignJob, dataDir string) (kept []CampaignJob, missing map[string]error) {
	missing = map[string]error{}
	for _, cj := range jobs {
		if _, seen := missing[cj.Job.Dataset]; seen {
			continue
		}
		if _, _, err := datasetPath(dataDir, cj.Job.Dataset); err != nil {
			missing[cj.Job.Dataset] = err
			continue
		}
		kept = append(kept, cj)
	}
	return kept, missing
}

func hasPrefix(s string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// JobState is where a job of a campaign stands in a state directory.
type JobState string

const (
	JobTodo    JobState = "todo"
	JobPartial JobState = "partial" // a checkpoint to resume from
	JobDone    JobState = "done"
	JobFailed  JobState = "failed" // failed (e.g. diverged); not retried
)

// failedFile in a run directory holds why the job failed; a failed job is
// not started again (a diverged run would diverge again) until the file is
// removed.
const failedFile = "failed.txt"

// StateOf reads a job's state from its run directory.
func StateOf(runDir string) JobState {
	exists := func(name string) bool { _, err := os.Stat(filepath.Join(runDir, name)); return err == nil }
	switch {
	case exists(train.ResultsFile):
		return JobDone
	case exists(failedFile):
		return JobFailed
	case exists(filepath.Join(train.CheckpointDir, train.LastCheckpoint)):
		return JobPartial
	}
	return JobTodo
}

// Launcher trains one job in dir/<job id> (resuming from its checkpoint)
// until it finishes or ctx is cancelled; cancelled, it must leave a
// checkpoint before returning. The campaign's launcher starts a process of
// the GPU binary per job, so K jobs share one GPU as K processes.
type Launcher func(ctx context.Context, job Job, dir string) error

// PoolOptions say how many jobs run at once and until when.
type PoolOptions struct {
	// Slots is how many jobs run at once (--jobs-per-gpu).
	Slots int
	// Deadline, when set, is when running jobs are told to stop
	// (checkpointing); no job starts after Deadline minus MinStart.
	Deadline time.Time
	MinStart time.Duration
	// RetryFailed starts failed jobs again.
	RetryFailed bool
	Logger      *logrus.Logger
}

// PoolOutcome is what happened to each job a pool was given.
type PoolOutcome struct {
	Job   CampaignJob
	State JobState
	// Started says the pool ran it in this call; Err is its launcher's
	// error when it neither finished nor was stopped by the deadline.
	Started bool
	Err     error
}

// RunPool runs the jobs in order, opts.Slots at a time, each through
// launch, skipping finished and failed ones. It returns when every job has
// finished or failed, or, after the deadline (or ctx's end), when every
// running job has checkpointed and stopped. A job that fails is marked
// failed and the others go on.
func RunPool(ctx context.Context, state string, jobs []CampaignJob, launch Launcher, opts PoolOptions) []PoolOutcome {
	slots := max(opts.Slots, 1)
	if !opts.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, opts.Deadline)
		defer cancel()
	}
	out := make([]PoolOutcome, len(jobs))
	sem := make(chan struct{}, slots)
	var wg sync.WaitGroup
	// The seeds of one group that selects its proportion share the
	// candidates' run directories (select.go): they must not train them at
	// the same time, so such jobs of one group take turns.
	selecting := map[string]*sync.Mutex{}
	logf := func(fields logrus.Fields, msg string) {
		if opts.Logger != nil {
			opts.Logger.WithFields(fields).Info(msg)
		}
	}
	for i, cj := range jobs {
		runDir := filepath.Join(cj.Dir(state), cj.Job.ID)
		out[i] = PoolOutcome{Job: cj, State: StateOf(runDir)}
		if out[i].State == JobFailed && opts.RetryFailed {
			if err := os.Remove(filepath.Join(runDir, failedFile)); err != nil {
				out[i].Err = err
				continue
			}
			out[i].State = StateOf(runDir)
		}
		if out[i].State == JobDone || out[i].State == JobFailed {
			continue
		}
		canStart := func() bool {
			return ctx.Err() == nil && (opts.Deadline.IsZero() || time.Until(opts.Deadline) >= opts.MinStart)
		}
		if !canStart() {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		if !canStart() {
			<-sem
			continue
		}
		if out[i].State == JobTodo {
			// Metrics without a checkpoint (a run killed before its first
			// checkpoint, or a restore cut short) are stale: the job starts
			// from scratch, and the trainer refuses a directory holding them.
			if err := os.Remove(filepath.Join(runDir, train.MetricsFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
				out[i].Err = err
				<-sem
				continue
			}
		}
		out[i].Started = true
		var turn *sync.Mutex
		if cj.Job.Selection != nil {
			key := cj.Experiment + "/" + cj.Job.Group
			if selecting[key] == nil {
				selecting[key] = new(sync.Mutex)
			}
			turn = selecting[key]
		}
		wg.Add(1)
		go func(i int, cj CampaignJob) {
			defer wg.Done()
			defer func() { <-sem }()
			if turn != nil {
				turn.Lock()
				defer turn.Unlock()
			}
			start := time.Now()
			logf(logrus.Fields{"experiment": cj.Experiment, "job": cj.Job.ID, "was": out[i].State}, "job started")
			err := launch(ctx, cj.Job, cj.Dir(state))
			st := StateOf(runDir)
			switch {
			case st == JobDone:
				err = nil // finished: whatever the process said on its way out
			case ctx.Err() != nil:
				err = nil // stopped by the deadline: a checkpoint to resume
			case err == nil:
				err = errors.New("the job returned without results")
			}
			if err != nil {
				if werr := train.WriteBytesAtomic(filepath.Join(runDir, failedFile), []byte(err.Error()+"\n")); werr != nil {
					err = fmt.Errorf("%w (and marking it failed: %v)", err, werr)
				}
				st = JobFailed
			}
			out[i].State, out[i].Err = st, err
			logf(logrus.Fields{"experiment": cj.Experiment, "job": cj.Job.ID, "state": st, "seconds": time.Since(start).Round(time.Second).Seconds(), "err": err}, "job stopped")
		}(i, cj)
	}
	wg.Wait()
	return out
}

// CampaignStatus counts the jobs of each entry by state.
type CampaignStatus struct {
	Entry  CampaignEntry
	Counts map[JobState]int
	Total  int
}

// Status reads where every job of the campaign stands under root (a state
// directory, or the repository's copy of the finished runs).
func (c Campaign) Status(root string) ([]CampaignStatus, error) {
	jobs, err := c.Jobs()
	if err != nil {
		return nil, err
	}
	var out []CampaignStatus
	for _, en := range c.Entries {
		st := CampaignStatus{Entry: en, Counts: map[JobState]int{}}
		for _, cj := range jobs {
			if cj.Experiment == en.Experiment {
				st.Total++
				st.Counts[StateOf(filepath.Join(cj.Dir(root), cj.Job.ID))]++
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// StatusTable is the status as a Markdown table.
func StatusTable(sts []CampaignStatus) string {
	var b strings.Builder
	b.WriteString("| experiment | scale | done | partial | failed | to do | what |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, s := range sts {
		why := s.Entry.Why // says what the paper-scale entry is
		if s.Entry.Scale != Paper {
			why = "-"
		}
		fmt.Fprintf(&b, "| %s | %s | %d/%d | %d | %d | %d | %s |\n", s.Entry.Experiment, s.Entry.Scale, s.Counts[JobDone], s.Total,
			s.Counts[JobPartial], s.Counts[JobFailed], s.Counts[JobTodo], why)
	}
	return b.String()
}
