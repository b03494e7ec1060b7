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
// scale, 12 epochs per job, two jobs at once on the CUDA path's CPU
// interpreter) the way device calls run it: call 1's budget expires and it
// packs; call 2 restores that pack in a fresh directory, is interrupted
// (SIGINT) mid-run and packs; call 3 restores call 2's pack in a fresh
// directory and is killed (SIGKILL, workers included) mid-run; call 4
// finishes in call 3's directory. The results merged from the calls' packs
// are those of an uninterrupted campaign, epoch by epoch, and so is their
// report.
func TestCampaignAcrossCalls(t *testing.T) {
	data := sharedData(t)
	t.Setenv("ERASERELU_MAIN", "1") // the workers are this test binary
	tmp := t.TempDir()
	jobs := []string{"mnist-p0-s1", "mnist-p0.5-s1"}
	common := []string{"--scale", "smoke", "--only", "fig3c", "--set", "epochs=12", "--device", "cuda-ref", "--jobs-per-gpu", "2", "--data", data, "--max-state-mb", "64"}
	args := func(extra ...string) []string {
		return append(append([]string{"campaign", "run"}, common...), extra...)
	}
	campaign := func(extra ...string) string {
		t.Helper()
		out, err := run(t, args(extra...)...)
		if err != nil {
			t.Fatalf("campaign run %v: %v\n%s", extra, err, out)
		}
		return out
	}
	// background starts a call as its own process and returns once it has
	// trained an epoch beyond the before it restored.
	background := func(state string, before int, extra ...string) *exec.Cmd {
		t.Helper()
		cmd := exec.Command(os.Args[0], args(append([]string{"--state", state}, extra...)...)...)
		cmd.Env = os.Environ()
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(90 * time.Second)
		for countEpochs(t, state) <= before && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if countEpochs(t, state) <= before {
			cmd.Process.Kill()
			t.Fatalf("campaign %v trained no epoch in 90 s:\n%s", extra, out.String())
		}
		return cmd
	}
	pack := func(name string) (dir, archive string) {
		dir = filepath.Join(tmp, name)
		return dir, filepath.Join(dir, experiments.StateArchive)
	}

	ref := filepath.Join(tmp, "ref")
	campaign("--state", ref)

	// Call 1: the budget ends mid-run (12 epochs take longer than the 3 s
	// before its stop); it stops within the budget and packs.
	pack1, state1 := pack("pack1")
	t0 := time.Now()
	out := campaign("--state", filepath.Join(tmp, "call1"), "--budget", "5s", "--margin", "2s", "--min-start", "0s", "--pack", pack1)
	if d := time.Since(t0); d > 8*time.Second {
		t.Errorf("call 1 took %s on a 5 s budget", d)
	}
	if !strings.Contains(out, "| fig3c | smoke | 0/2 |") || !strings.Contains(out, "packed "+pack1) {
		t.Fatalf("call 1 should stop before any job is done, and pack:\n%s", out)
	}

	// Call 2: restores call 1's pack in a fresh directory; SIGINT mid-run:
	// the jobs checkpoint where they are and the call packs.
	pack2, state2 := pack("pack2")
	cmd := background(filepath.Join(tmp, "call2"), countEpochs(t, filepath.Join(tmp, "call1")), "--restore", state1, "--pack", pack2)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("call 2 interrupted: %v", err)
	}
	small, err := run(t, "campaign", "pack", "--scale", "smoke", "--only", "fig3c", "--state", filepath.Join(tmp, "call2"),
		"--out", filepath.Join(tmp, "small"), "--max-state-mb", "1")
	if err != nil || !strings.Contains(small, " 0 resumable") || !strings.Contains(small, "restart next call: fig3c/") {
		t.Errorf("a state bound too small for a checkpoint: %v\n%s", err, small)
	}

	// Call 3: restores call 2's pack in a fresh directory; SIGKILL mid-run.
	call3 := filepath.Join(tmp, "call3")
	cmd = background(call3, countEpochs(t, filepath.Join(tmp, "call2")), "--restore", state2)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	// The workers died with the campaign: nothing writes any more.
	before := logSizes(t, call3)
	time.Sleep(1500 * time.Millisecond)
	if after := logSizes(t, call3); after != before {
		t.Fatalf("workers still running after the campaign was killed: logs grew from %d to %d bytes", before, after)
	}

	// Call 4 finishes in call 3's directory and packs.
	pack4, _ := pack("pack4")
	out = campaign("--state", call3, "--pack", pack4)
	if !strings.Contains(out, "| fig3c | smoke | 2/2 |") {
		for _, job := range jobs {
			b, _ := os.ReadFile(filepath.Join(call3, "fig3c", job, "worker.log"))
			t.Logf("%s worker.log:\n%s", job, b)
		}
		t.Fatalf("call 4 should finish both jobs:\n%s", out)
	}
	resumed := 0
	for _, job := range jobs {
		log, err := os.ReadFile(filepath.Join(call3, "fig3c", job, train.LogFile))
		if err != nil {
			t.Fatal(err)
		}
		resumed += strings.Count(string(log), `"run resumed"`)
	}
	if resumed < 2 {
		t.Errorf("the jobs resumed %d times across the calls, want >= 2", resumed)
	}

	// Merge the calls' results into a repository and compare.
	repo := filepath.Join(tmp, "repo")
	for _, p := range []string{pack1, pack2, pack4} {
		if _, err := experiments.UnpackArchive(filepath.Join(p, experiments.ResultsArchive), repo); err != nil {
			t.Fatal(err)
		}
	}
	merged := filepath.Join(repo, "docs", "runs", "paper", "fig3c")
	for _, job := range jobs {
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
