package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eraserelu/eraserelu/experiments"
	"github.com/eraserelu/eraserelu/train"
)

// TestCampaignAcrossCalls runs a small campaign (Figure 3(c) at smoke
// scale, 20 epochs per job, two jobs at once on the CUDA path's CPU
// interpreter) the way device calls run it: call 1's budget expires
// mid-run and it packs; call 2 restores that pack in a fresh directory and
// is killed (SIGKILL, workers included) mid-run; call 3 finishes in call 2's
// directory. The results merged from the calls' packs are those of an
// uninterrupted campaign, epoch by epoch, and so is their report.
func TestCampaignAcrossCalls(t *testing.T) {
	data := sharedData(t)
	t.Setenv("ERASERELU_MAIN", "1") // the workers are this test binary
	tmp := t.TempDir()
	common := []string{"--scale", "smoke", "--only", "fig3c", "--set", "epochs=20", "--device", "cuda-ref", "--jobs-per-gpu", "2", "--data", data}
	campaign := func(args ...string) string {
		t.Helper()
		out, err := run(t, append(append([]string{"campaign", "run"}, common...), args...)...)
		if err != nil {
			t.Fatalf("campaign run %v: %v\n%s", args, err, out)
		}
		return out
	}

	ref := filepath.Join(tmp, "ref")
	campaign("--state", ref)

	// Call 1: the budget ends mid-run; the jobs checkpoint and the state is packed.
	call1, pack1 := filepath.Join(tmp, "call1"), filepath.Join(tmp, "pack1")
	out := campaign("--state", call1, "--budget", "9s", "--margin", "2s", "--min-start", "0s", "--pack", pack1, "--max-state-mb", "64")
	if strings.Contains(out, "| fig3c | smoke | 2/2 |") || strings.Contains(out, " 0 resumable") {
		t.Fatalf("call 1 should stop with a job checkpointed mid-run:\n%s", out)
	}

	// A state bound too small for a checkpoint: the jobs would restart.
	small, err := run(t, "campaign", "pack", "--scale", "smoke", "--only", "fig3c", "--state", call1, "--out", filepath.Join(tmp, "small"), "--max-state-mb", "1")
	if err != nil || !strings.Contains(small, "0 resumable") || !strings.Contains(small, "restart next call: fig3c/mnist-p0-s1") {
		t.Errorf("pack with --max-state-mb 1: %v\n%s", err, small)
	}

	// Call 2: a fresh directory restored from call 1's pack, killed once a
	// job has finished an epoch beyond its checkpoint.
	call2 := filepath.Join(tmp, "call2")
	args := append(append([]string{"campaign", "run"}, common...), "--state", call2, "--restore", filepath.Join(pack1, experiments.StateArchive))
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	restored := countEpochs(t, call1)
	deadline := time.Now().Add(60 * time.Second)
	for countEpochs(t, call2) <= restored && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if n := countEpochs(t, call2); n <= restored {
		t.Fatalf("call 2 trained no epoch beyond call 1's %d in 60 s", n)
	}
	// The workers died with the campaign: nothing writes any more.
	before := logSizes(t, call2)
	time.Sleep(1500 * time.Millisecond)
	if after := logSizes(t, call2); after != before {
		t.Fatalf("workers still running after the campaign was killed: logs grew from %d to %d bytes", before, after)
	}

	// Call 3 finishes in call 2's directory and packs.
	pack3 := filepath.Join(tmp, "pack3")
	out = campaign("--state", call2, "--pack", pack3)
	if !strings.Contains(out, "| fig3c | smoke | 2/2 |") {
		t.Fatalf("call 3 should finish both jobs:\n%s", out)
	}
	for _, job := range []string{"mnist-p0-s1", "mnist-p0.5-s1"} {
		log, err := os.ReadFile(filepath.Join(call2, "fig3c", job, train.LogFile))
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(log), `"run resumed"`); n < 2 {
			t.Errorf("%s resumed %d times across the calls, want >= 2", job, n)
		}
	}

	// Merge the calls' results into a repository and compare.
	repo := filepath.Join(tmp, "repo")
	for _, p := range []string{pack1, pack3} {
		if _, err := experiments.UnpackArchive(filepath.Join(p, experiments.ResultsArchive), repo); err != nil {
			t.Fatal(err)
		}
	}
	merged := filepath.Join(repo, "docs", "runs", "paper", "fig3c")
	for _, job := range []string{"mnist-p0-s1", "mnist-p0.5-s1"} {
		a, b := readHistory(t, filepath.Join(ref, "fig3c", job)), readHistory(t, filepath.Join(merged, job))
		if a != b {
			t.Errorf("%s: interrupted, resumed and merged run differs from the uninterrupted one:\n%s\n%s", job, b, a)
		}
		if _, err := os.Stat(filepath.Join(merged, job, "checkpoints")); err == nil {
			t.Errorf("%s: the repository copy holds weights", job)
		}
	}
	mdRef, err := run(t, "report", filepath.Join(ref, "fig3c"))
	if err != nil {
		t.Fatal(err)
	}
	mdMerged, err := run(t, "report", merged)
	if err != nil {
		t.Fatal(err)
	}
	if mdRef != mdMerged {
		t.Errorf("merged report differs from the uninterrupted one:\n%s\n---\n%s", mdMerged, mdRef)
	}
	st, err := run(t, "campaign", "status", "--scale", "smoke", "--only", "fig3c", filepath.Join(repo, "docs", "runs", "paper"))
	if err != nil || !strings.Contains(st, "| fig3c | smoke | 2/2 |") {
		t.Errorf("status of the merged results: %v\n%s", err, st)
	}
}

// countEpochs counts the finished epochs in the train logs under a state directory.
func countEpochs(t *testing.T, state string) int {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(state, "*", "*", train.LogFile))
	n := 0
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		n += strings.Count(string(b), `"epoch done"`)
	}
	return n
}

func logSizes(t *testing.T, state string) int64 {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(state, "*", "*", "*.log"))
	var n int64
	for _, l := range logs {
		if fi, err := os.Stat(l); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// readHistory is a run's per-epoch metrics without the timings (the only
// fields that differ between identical runs).
func readHistory(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, train.ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	var r train.Result
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	for i := range r.History {
		r.History[i].Seconds, r.History[i].ImagesPerSec = 0, 0
	}
	h, _ := json.Marshal(r.History)
	return string(h)
}

// TestExperimentJobsPerGPU: `experiment --jobs-per-gpu 2` trains the jobs
// two at a time in worker processes, and gives the one-by-one run's
// metrics and report.
func TestExperimentJobsPerGPU(t *testing.T) {
	data := sharedData(t)
	t.Setenv("ERASERELU_MAIN", "1") // the workers are this test binary
	tmp := t.TempDir()
	for _, k := range []string{"1", "2"} {
		if out, err := run(t, "experiment", "fig3c", "--scale", "smoke", "--device", "cuda-ref", "--data", data,
			"--jobs-per-gpu", k, "--out", filepath.Join(tmp, k)); err != nil {
			t.Fatalf("--jobs-per-gpu %s: %v\n%s", k, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "2", "fig3c", "mnist-p0-s1", "worker.log")); err != nil {
		t.Errorf("--jobs-per-gpu 2 did not train in a worker process: %v", err)
	}
	for _, job := range []string{"mnist-p0-s1", "mnist-p0.5-s1"} {
		if a, b := readHistory(t, filepath.Join(tmp, "1", "fig3c", job)), readHistory(t, filepath.Join(tmp, "2", "fig3c", job)); a != b {
			t.Errorf("%s: --jobs-per-gpu 2 differs from one by one:\n%s\n%s", job, b, a)
		}
	}
	a, errA := os.ReadFile(filepath.Join(tmp, "1", "fig3c", "report.md"))
	b, errB := os.ReadFile(filepath.Join(tmp, "2", "fig3c", "report.md"))
	if errA != nil || errB != nil || string(a) != string(b) {
		t.Errorf("reports differ (%v, %v):\n%s\n---\n%s", errA, errB, b, a)
	}
	if _, err := run(t, "experiment", "fig3c", "--jobs-per-gpu", "0"); err == nil || !strings.Contains(err.Error(), "--jobs-per-gpu 0") {
		t.Errorf("--jobs-per-gpu 0: %v", err)
	}
}
