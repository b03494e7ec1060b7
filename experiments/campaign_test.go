package experiments

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eraserelu/eraserelu/train"
)

// TestPaperCampaignJobs: the default campaign is the list (Figure
// 3(c) 30 jobs, Table 2 ResNet-56/110 CIFAR-10 20, Figure 3(a) CIFAR-10
// 33, Table 1 ResNet-20 on CIFAR-10 40), each experiment's jobs seed by
// seed; --only and scales below paper work.
func TestPaperCampaignJobs(t *testing.T) {
	jobs, err := PaperCampaign().Jobs()
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	lastSeed := map[string]uint64{}
	for _, cj := range jobs {
		count[cj.Experiment]++
		if cj.Job.Seed < lastSeed[cj.Experiment] {
			t.Fatalf("%s: job %s (seed %d) after seed %d", cj.Experiment, cj.Job.ID, cj.Job.Seed, lastSeed[cj.Experiment])
		}
		lastSeed[cj.Experiment] = cj.Job.Seed
		switch cj.Experiment {
		case "table2":
			if cj.Job.Dataset != "cifar10" || cj.Job.Arch != "resnet-56" && cj.Job.Arch != "resnet-110" {
				t.Errorf("table2 job %s: %s on %s", cj.Job.ID, cj.Job.Arch, cj.Job.Dataset)
			}
		case "fig3a", "table1":
			if cj.Job.Dataset != "cifar10" {
				t.Errorf("%s job %s on %s", cj.Experiment, cj.Job.ID, cj.Job.Dataset)
			}
		}
	}
	want := map[string]int{"fig3c": 30, "table2": 20, "fig3a": 33, "table1": 40}
	for k, v := range want {
		if count[k] != v {
			t.Errorf("%s: %d jobs, want %d", k, count[k], v)
		}
	}
	if jobs[0].Experiment != "fig3c" || jobs[len(jobs)-1].Experiment != "table1" {
		t.Errorf("order: first %s, last %s", jobs[0].Experiment, jobs[len(jobs)-1].Experiment)
	}
	if table1 := jobs[len(jobs)-1].Job; table1.Arch != "resnet-20" {
		t.Errorf("table1 job %s is %s", table1.ID, table1.Arch)
	}
	kept, missing := WithData(jobs, t.TempDir())
	if len(kept) != 0 || missing["mnist"] == nil || missing["cifar10"] == nil || !strings.Contains(missing["mnist"].Error(), "data set mnist not found") {
		t.Errorf("no data: kept %d jobs, missing %v", len(kept), missing)
	}
	if _, err := PaperCampaign().Only([]string{"fig9"}); err == nil || !strings.Contains(err.Error(), "--only fig9") {
		t.Errorf("--only fig9: %v", err)
	}
	c, err := PaperCampaign().WithScale(Smoke).Only([]string{"table2", "fig3c"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Entries) != 2 || c.Entries[0].Experiment != "fig3c" {
		t.Fatalf("--only keeps the campaign's order: %+v", c.Entries)
	}
	if _, err := c.Jobs(); err != nil {
		t.Errorf("smoke scale: %v", err)
	}
}

// fakeJobs are n smoke jobs of fig3c's shape with distinct IDs.
func fakeJobs(n int) []CampaignJob {
	var out []CampaignJob
	for i := range n {
		out = append(out, CampaignJob{Experiment: "fig3c", Job: Job{ID: "j" + string(rune('a'+i)), Seed: uint64(i)}})
	}
	return out
}

// touch writes size random bytes (incompressible, as weights nearly are).
func touch(t *testing.T, path string, size int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRunPool: at most Slots jobs run at once; a job without checkpoint
// starts clean (no stale metrics); at the deadline the running
// jobs are cancelled (they checkpoint: partial) and no new job starts; a
// failing job is marked failed, skipped the next time, and retried with
// RetryFailed; finished jobs are not run again.
func TestRunPool(t *testing.T) {
	state := t.TempDir()
	var mu sync.Mutex
	running, most, calls := 0, 0, map[string]int{}
	launch := func(ctx context.Context, job Job, dir string) error {
		mu.Lock()
		running++
		most = max(most, running)
		calls[job.ID]++
		mu.Unlock()
		defer func() { mu.Lock(); running--; mu.Unlock() }()
		run := filepath.Join(dir, job.ID)
		if _, err := os.Stat(filepath.Join(run, train.MetricsFile)); err == nil {
			return errors.New("stale metrics.csv left in a job without checkpoint")
		}
		touch(t, filepath.Join(run, jobFile), 2)
		if job.ID == "jb" {
			return errors.New("diverged")
		}
		if job.ID == "jc" { // long: still running at the deadline
			<-ctx.Done()
			touch(t, filepath.Join(run, train.CheckpointDir, train.LastCheckpoint), 10)
			return ctx.Err()
		}
		time.Sleep(150 * time.Millisecond)
		touch(t, filepath.Join(run, train.ResultsFile), 2)
		return nil
	}
	// Slot 1: ja (0-150 ms), jd (150-300 ms); slot 2: jb fails at once, jc
	// runs until the deadline (1 s). Jobs may start until 225 ms, so je does
	// not.
	jobs := fakeJobs(6)
	touch(t, filepath.Join(state, "fig3c", "ja", train.MetricsFile), 2) // killed before its first checkpoint
	outs := RunPool(context.Background(), state, jobs, launch,
		PoolOptions{Slots: 2, Deadline: time.Now().Add(time.Second), MinStart: 775 * time.Millisecond})
	got := map[string]JobState{}
	for _, o := range outs {
		got[o.Job.Job.ID] = o.State
	}
	want := map[string]JobState{"ja": JobDone, "jb": JobFailed, "jc": JobPartial, "jd": JobDone, "je": JobTodo, "jf": JobTodo}
	for id, st := range want {
		if got[id] != st {
			t.Errorf("job %s: %s, want %s (all: %v)", id, got[id], st, got)
		}
	}
	if most != 2 {
		t.Errorf("at most %d jobs ran at once, want 2", most)
	}
	b, err := os.ReadFile(filepath.Join(state, "fig3c", "jb", failedFile))
	if err != nil || !strings.Contains(string(b), "diverged") {
		t.Errorf("failed.txt: %q, %v", b, err)
	}

	// The next call: no deadline; the failed job is skipped, then retried.
	RunPool(context.Background(), state, jobs[:2], launch, PoolOptions{Slots: 2})
	if calls["ja"] != 1 || calls["jb"] != 1 {
		t.Errorf("a finished or failed job ran again: %v", calls)
	}
	RunPool(context.Background(), state, jobs[:2], launch, PoolOptions{Slots: 2, RetryFailed: true})
	if calls["jb"] != 2 {
		t.Errorf("RetryFailed: the failed job ran %d times, want 2", calls["jb"])
	}
}

// TestRunPoolSelectionTakesTurns: jobs of one group that select their
// proportion share the candidates' runs, so they never run at once; other
// groups still run beside them.
func TestRunPoolSelectionTakesTurns(t *testing.T) {
	state := t.TempDir()
	var mu sync.Mutex
	running, most, together := map[string]int{}, map[string]int{}, 0
	total := 0
	launch := func(ctx context.Context, job Job, dir string) error {
		mu.Lock()
		running[job.Group]++
		total++
		most[job.Group] = max(most[job.Group], running[job.Group])
		together = max(together, total)
		mu.Unlock()
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		running[job.Group]--
		total--
		mu.Unlock()
		touch(t, filepath.Join(dir, job.ID, train.ResultsFile), 2)
		return nil
	}
	var jobs []CampaignJob
	for seed := 1; seed <= 3; seed++ {
		for _, g := range []string{"resnet-56-er", "resnet-110-er"} {
			jobs = append(jobs, CampaignJob{Experiment: "table2", Job: Job{ID: fmt.Sprintf("%s-s%d", g, seed), Group: g, Seed: uint64(seed), Selection: &Selection{}}})
		}
	}
	RunPool(context.Background(), state, jobs, launch, PoolOptions{Slots: 4})
	for g, n := range most {
		if n != 1 {
			t.Errorf("group %s: %d selecting jobs ran at once, want 1", g, n)
		}
	}
	if together < 2 {
		t.Errorf("at most %d jobs ran at once: the two groups should run side by side", together)
	}
}

// TestPackCampaign: results.tar.gz holds the finished runs' small files
// under the repository prefix and no weights; state.tar.gz holds them too,
// plus the unfinished runs' checkpoints in priority order while under the
// bound; unpacked in a fresh directory the state reads the same.
func TestPackCampaign(t *testing.T) {
	state := t.TempDir()
	jobs := fakeJobs(4)
	dir := func(id string) string { return filepath.Join(state, "fig3c", id) }
	for _, id := range []string{"ja", "jb", "jc", "jd"} {
		touch(t, filepath.Join(dir(id), jobFile), 10)
	}
	touch(t, filepath.Join(dir("ja"), train.ResultsFile), 10)
	touch(t, filepath.Join(dir("ja"), train.MetricsFile), 10)
	touch(t, filepath.Join(dir("ja"), train.CheckpointDir, train.LastCheckpoint), 1000)
	touch(t, filepath.Join(dir("jb"), train.CheckpointDir, train.LastCheckpoint), 600<<10)
	touch(t, filepath.Join(dir("jc"), train.CheckpointDir, train.LastCheckpoint), 600<<10)
	touch(t, filepath.Join(dir("jd"), failedFile), 10)
	// A selection's candidate runs, one finished, one resumable.
	cand := func(id string) string { return filepath.Join(state, "fig3c", "g-select", id) }
	touch(t, filepath.Join(cand("p25"), jobFile), 10)
	touch(t, filepath.Join(cand("p25"), train.ResultsFile), 10)
	touch(t, filepath.Join(cand("p25"), train.CheckpointDir, train.LastCheckpoint), 100)
	touch(t, filepath.Join(cand("p50"), jobFile), 10)
	touch(t, filepath.Join(cand("p50"), train.CheckpointDir, train.LastCheckpoint), 100)
	out := t.TempDir()
	res, err := PackCampaign(state, out, PackOptions{ResultsPrefix: "docs/runs/paper", MaxStateBytes: 1 << 20, Order: jobs})
	if err != nil {
		t.Fatal(err)
	}
	if res.Done != 2 || res.Failed != 1 || len(res.Resumable) != 2 || res.Resumable[0] != filepath.Join("fig3c", "jb") ||
		res.Resumable[1] != filepath.Join("fig3c", "g-select", "p50") ||
		len(res.Dropped) != 1 || res.Dropped[0] != filepath.Join("fig3c", "jc") {
		t.Fatalf("pack: %+v", res)
	}
	if res.StateBytes > 1<<20 {
		t.Errorf("state.tar.gz is %d bytes, over the 1 MiB bound", res.StateBytes)
	}
	names := tarNames(t, filepath.Join(out, ResultsArchive))
	wantNames := []string{"docs/runs/paper/fig3c/g-select/p25/job.json", "docs/runs/paper/fig3c/g-select/p25/results.json",
		"docs/runs/paper/fig3c/ja/job.json", "docs/runs/paper/fig3c/ja/metrics.csv", "docs/runs/paper/fig3c/ja/results.json",
		"docs/runs/paper/fig3c/jd/failed.txt", "docs/runs/paper/fig3c/jd/job.json"}
	if strings.Join(names, " ") != strings.Join(wantNames, " ") {
		t.Errorf("results.tar.gz holds %v, want %v", names, wantNames)
	}
	fresh := t.TempDir()
	if _, err := UnpackArchive(filepath.Join(out, StateArchive), fresh); err != nil {
		t.Fatal(err)
	}
	for id, st := range map[string]JobState{"ja": JobDone, "jb": JobPartial, "jc": JobTodo, "jd": JobFailed, "g-select/p25": JobDone, "g-select/p50": JobPartial} {
		if got := StateOf(filepath.Join(fresh, "fig3c", id)); got != st {
			t.Errorf("unpacked %s: %s, want %s", id, got, st)
		}
	}
}

func tarNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	sort.Strings(names)
	return names
}

// TestUnpackRefusesEscapes: an archive entry that would leave the directory
// is an error naming it, and nothing is written outside.
func TestUnpackRefusesEscapes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.tar.gz")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "../escape", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte("x"))
	tw.Close()
	gz.Close()
	f.Close()
	into := filepath.Join(dir, "into")
	if _, err := UnpackArchive(p, into); err == nil || !strings.Contains(err.Error(), `"../escape"`) {
		t.Errorf("unpack ../escape: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "escape")); err == nil {
		t.Error("an entry was written outside the directory")
	}
}
