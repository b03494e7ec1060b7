package experiments

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseShard(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Shard
		ok   bool
	}{
		{"", All, true}, {"0/1", Shard{0, 1}, true}, {"3/4", Shard{3, 4}, true},
		{"4/4", Shard{}, false}, {"-1/2", Shard{}, false}, {"1", Shard{}, false}, {"a/b", Shard{}, false}, {"0/0", Shard{}, false},
	} {
		got, err := ParseShard(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("ParseShard(%q) = %v, %v", c.in, got, err)
		}
		if err != nil && !strings.Contains(err.Error(), "--shard") {
			t.Errorf("error %q does not name the flag", err)
		}
	}
}

func TestShardsPartitionJobs(t *testing.T) {
	var jobs []Job
	for i := 0; i < 11; i++ {
		jobs = append(jobs, Job{ID: string(rune('a' + i))})
	}
	seen := map[string]int{}
	for i := 0; i < 3; i++ {
		for _, j := range (Shard{i, 3}).Select(jobs) {
			seen[j.ID]++
		}
	}
	if len(seen) != len(jobs) {
		t.Fatalf("shards cover %d of %d jobs", len(seen), len(jobs))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("job %s in %d shards", id, n)
		}
	}
}

func TestPlans(t *testing.T) {
	c := PlanConfig{Experiment: "table1", Scale: Paper, Shards: 8, Results: "/shared/results", GPUs: 1, Data: "/shared/datasets"}
	var b bytes.Buffer
	if err := WriteSlurm(&b, c); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"#SBATCH --array=0-7", "--gres=gpu:1", `--shard "${SLURM_ARRAY_TASK_ID}/8"`, "experiment table1 --scale paper", `--device cuda --data "/shared/datasets"`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("slurm script lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := WriteK8s(&b, c); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"completionMode: Indexed", "completions: 8", "${JOB_COMPLETION_INDEX}/8", "nvidia.com/gpu: 1", "--device cuda"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("k8s manifest lacks %q:\n%s", want, b.String())
		}
	}
	if err := WriteSlurm(&b, PlanConfig{Experiment: "table1", Scale: Paper, Shards: 0, Results: "r"}); err == nil || !strings.Contains(err.Error(), "--shards") {
		t.Errorf("zero shards: %v", err)
	}
	if err := WriteSlurm(&b, PlanConfig{Experiment: "table1", Scale: Paper, Shards: 2, Results: "r", GPUs: 2}); err == nil || !strings.Contains(err.Error(), "--gpus") {
		t.Errorf("two GPUs per shard: %v", err)
	}
	// Without a GPU the shard trains on the CPU: no --device flag.
	b.Reset()
	if err := WriteSlurm(&b, PlanConfig{Experiment: "fig3c", Scale: Quick, Shards: 2, Results: "r"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "--device") || strings.Contains(b.String(), "--gres") {
		t.Errorf("CPU plan asks for a device:\n%s", b.String())
	}
}

// TestPlanValidatesBeforeWriting: a plan for an unknown experiment or
// scale, or with more shards than jobs, is an error and writes nothing.
func TestPlanValidatesBeforeWriting(t *testing.T) {
	for _, c := range []struct {
		cfg  PlanConfig
		want string
	}{
		{PlanConfig{Experiment: "nosuch", Scale: Paper, Shards: 2, Results: "r"}, `unknown experiment "nosuch"`},
		{PlanConfig{Experiment: "table1", Scale: "huge", Shards: 2, Results: "r"}, `--scale "huge"`},
		{PlanConfig{Experiment: "fig4", Scale: Paper, Shards: 2, Results: "r"}, "cannot be sharded"},
		{PlanConfig{Experiment: "fig3c", Scale: Smoke, Shards: 5, Results: "r"}, "has only 2 jobs"},
	} {
		for _, write := range []func(*bytes.Buffer, PlanConfig) error{
			func(b *bytes.Buffer, c PlanConfig) error { return WriteSlurm(b, c) },
			func(b *bytes.Buffer, c PlanConfig) error { return WriteK8s(b, c) },
		} {
			var b bytes.Buffer
			err := write(&b, c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%+v: error %v, want %q", c.cfg, err, c.want)
			}
			if b.Len() != 0 {
				t.Errorf("%+v: wrote %d bytes before failing", c.cfg, b.Len())
			}
		}
	}
	var b bytes.Buffer
	if err := WriteSlurm(&b, PlanConfig{Experiment: "fig4", Scale: Paper, Shards: 1, Results: "r"}); err != nil {
		t.Errorf("fig4 as one shard: %v", err)
	}
}
