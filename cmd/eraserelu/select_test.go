package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSelect runs `eraserelu select` at smoke scale on MNIST: two
// candidates on a validation split, the lowest validation error chosen,
// the final run trained with it; a second call finds everything finished.
func TestSelect(t *testing.T) {
	data := sharedData(t)
	dir := filepath.Join(t.TempDir(), "mlp-sel")
	args := []string{"select", "--arch", "mlp-3", "--dataset", "mnist", "--data", data, "--recipe", "mlp-mnist",
		"--candidates", "0.5,1", "--validation", "0.25", "--train-per-class", "20", "--test-per-class", "5",
		"--epochs", "1", "--batch-size", "20", "--milestones", "", "--out", dir}
	out, err := run(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Proportion selection: mlp-3 on mnist", "| 50% |", "| 100% |", "chosen", "Retrained with"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	var job struct {
		Erase     float64 `json:"erase"`
		Selection struct {
			Candidates []float64 `json:"candidates"`
			ValErr     []float64 `json:"val_err"`
			Chosen     float64   `json:"chosen"`
		} `json:"selection"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "job.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &job); err != nil {
		t.Fatal(err)
	}
	sel := job.Selection
	if len(sel.ValErr) != 2 {
		t.Fatalf("job.json selection: %s", b)
	}
	want := sel.Candidates[0]
	if sel.ValErr[1] < sel.ValErr[0] {
		want = sel.Candidates[1]
	}
	if sel.Chosen != want || job.Erase != want {
		t.Errorf("chose %v (trained with %v), the lower validation error is at %v: %s", sel.Chosen, job.Erase, want, b)
	}
	for _, f := range []string{"mlp-sel-select/p50/results.json", "mlp-sel-select/p100/results.json", "mlp-sel-select/selection.json", "mlp-sel/selection.md"} {
		if _, err := os.Stat(filepath.Join(filepath.Dir(dir), f)); err != nil {
			t.Error(err)
		}
	}
	again, err := run(t, args...)
	if err != nil || again != out {
		t.Errorf("second call: %v\n%s\nfirst:\n%s", err, again, out)
	}
	if _, err := run(t, "select", "--candidates", "0,1", "--out", dir); err == nil || !strings.Contains(err.Error(), "--candidates") {
		t.Errorf("a zero candidate: %v", err)
	}
}

// TestPlanRejectsUnknownExperiment: nothing is printed for a plan that
// would fail on every node.
func TestPlanRejectsUnknownExperiment(t *testing.T) {
	out, err := run(t, "experiment", "nosuch", "--plan", "slurm", "--results", "/shared/r")
	if err == nil || !strings.Contains(err.Error(), `unknown experiment "nosuch"`) || out != "" {
		t.Errorf("plan of an unknown experiment: %v\n%s", err, out)
	}
}

func TestExperimentHelpListsEveryExperiment(t *testing.T) {
	out, err := run(t, "experiment", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"fig3a", "fig3c", "fig4", "fig6", "table1", "table4", "main"} {
		if !strings.Contains(out, "\n  "+name+" ") {
			t.Errorf("help does not list %s:\n%s", name, out)
		}
	}
}
