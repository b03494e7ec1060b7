package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestMain lets the tests run the command as a separate process: the test
// binary re-executes itself with ERASERELU_MAIN=1.
func TestMain(m *testing.M) {
	if os.Getenv("ERASERELU_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// run executes the command in-process.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := rootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// process executes the command as a separate process.
func process(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "ERASERELU_MAIN=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("eraserelu %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func sharedData(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../../../shared/datasets")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "mnist")); err != nil {
		t.Skipf("real data not available at %s", dir)
	}
	return dir
}

// TestShardsMergeToTheUnshardedTable runs an experiment whole, and again as
// two shards in two processes merged by `report`: the tables are the same.
func TestShardsMergeToTheUnshardedTable(t *testing.T) {
	data := sharedData(t)
	whole, sharded := t.TempDir(), t.TempDir()
	process(t, "experiment", "fig3c", "--scale", "smoke", "--data", data, "--out", whole)
	for _, s := range []string{"0/2", "1/2"} {
		out := process(t, "experiment", "fig3c", "--scale", "smoke", "--data", data, "--out", sharded, "--shard", s)
		if s == "0/2" && !strings.Contains(out, "merge all shards with: eraserelu report") {
			t.Errorf("first shard did not say how to merge:\n%s", out)
		}
	}
	merged := process(t, "report", filepath.Join(sharded, "fig3c"))
	a, err := os.ReadFile(filepath.Join(whole, "fig3c", "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(merged) != strings.TrimSpace(string(a)) {
		t.Errorf("merged shards:\n%s\nunsharded:\n%s", merged, a)
	}
}

func TestTrainAndResume(t *testing.T) {
	data := sharedData(t)
	dir := filepath.Join(t.TempDir(), "mlp")
	args := []string{"train", "--arch", "mlp-3", "--dataset", "mnist", "--data", data, "--recipe", "mlp-mnist", "--erase", "0.5",
		"--train-per-class", "10", "--test-per-class", "5", "--epochs", "1", "--batch-size", "20", "--milestones", "", "--out", dir}
	out, err := run(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "1 epochs, test top-1 error") {
		t.Errorf("output: %s", out)
	}
	var res struct {
		Epochs int `json:"epochs"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil || res.Epochs != 1 {
		t.Fatalf("results.json: %v %s", err, b)
	}
	for _, f := range []string{"config.json", "metrics.csv", "job.json", "checkpoints/last.safetensors"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	// A finished run is not trained again.
	again, err := run(t, args...)
	if err != nil || again != out {
		t.Errorf("second run: %v\n%s\nfirst:\n%s", err, again, out)
	}
	table, err := run(t, "report", filepath.Dir(dir))
	if err != nil || !strings.Contains(table, "| mlp-3 mnist erase=0.5 | 1 |") {
		t.Errorf("report of run directories: %v\n%s", err, table)
	}
	if _, err := run(t, "report", t.TempDir()); err == nil || !strings.Contains(err.Error(), "no finished run") {
		t.Errorf("report of an empty directory: %v", err)
	}
}

func TestFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"experiment", "fig9"}, `unknown experiment "fig9"`},
		{[]string{"experiment", "fig3c", "--scale", "huge"}, "--scale"},
		{[]string{"experiment", "fig3c", "--shard", "3/2"}, "--shard"},
		{[]string{"experiment", "fig3c", "--plan", "pbs", "--results", "r"}, "--plan"},
		{[]string{"train", "--arch", "resnet-21", "--out", "x", "--dataset", "mnist", "--data", "/nonexistent"}, "mnist"},
		{[]string{"train", "--out", "x", "--lr", "abc"}, "lr"},
		{[]string{"data", "stats"}, "--dataset"},
		{[]string{"data", "fetch", "cifar10", "--dir", "x"}, "only mnist"},
		{[]string{"bench", "--batch", "0"}, "--batch"},
	} {
		_, err := run(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("eraserelu %s: error %v, want one mentioning %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}

func TestDataStatsJSON(t *testing.T) {
	data := sharedData(t)
	out, err := run(t, "data", "stats", "--dataset", "mnist", "--dir", filepath.Join(data, "mnist"), "--json")
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if s["train"].(float64) != 60000 || s["test"].(float64) != 10000 || s["classes"].(float64) != 10 {
		t.Errorf("stats: %v", s)
	}
	for _, k := range []string{"mean", "std"} {
		if _, ok := s[k]; !ok {
			t.Errorf("no %q in %v", k, s)
		}
	}
}

// TestFlagUsagesHaveNoBackquotes: pflag prints a back-quoted word of a
// flag's usage as its value name ("--device make cuda-build"), so usages
// must not quote with backquotes.
func TestFlagUsagesHaveNoBackquotes(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if strings.Contains(f.Usage, "`") {
				t.Errorf("%s --%s: usage has a backquote: %q", c.CommandPath(), f.Name, f.Usage)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(rootCommand())
}

// TestBenchJSON: the bench command's JSON has the keys scripts and
// make bench read, with measured (positive) values.
func TestBenchJSON(t *testing.T) {
	out, err := run(t, "bench", "--arch", "resnet-8", "--batch", "4", "--steps", "1", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if r["arch"] != "resnet-8" || r["batch"].(float64) != 4 {
		t.Errorf("bench: %v", r)
	}
	for _, k := range []string{"train_img_s", "eval_img_s", "peak_rss_mib"} {
		if v, ok := r[k].(float64); !ok || v <= 0 {
			t.Errorf("bench: %s = %v, want a positive number", k, r[k])
		}
	}
	for _, k := range []string{"blas", "conv_kernels"} {
		if v, ok := r[k].(string); !ok || v == "" {
			t.Errorf("bench: %s = %v, want a name", k, r[k])
		}
	}
}

func TestPlan(t *testing.T) {
	out, err := run(t, "experiment", "table1", "--scale", "paper", "--plan", "slurm", "--shards", "4", "--results", "/shared/r")
	if err != nil || !strings.Contains(out, "#SBATCH --array=0-3") {
		t.Errorf("plan: %v\n%s", err, out)
	}
}
