package train

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestRecipesValidate(t *testing.T) {
	names := map[string]bool{}
	for _, r := range Recipes() {
		if names[r.Name] {
			t.Errorf("recipe %s twice", r.Name)
		}
		names[r.Name] = true
		if err := r.Config.Validate(); err != nil {
			t.Errorf("recipe %s: %v", r.Name, err)
		}
		if r.Source == "" || r.Config.Recipe != r.Name {
			t.Errorf("recipe %s: no source or wrong name %q", r.Name, r.Config.Recipe)
		}
	}
	for _, want := range []string{"he-resnet", "he-resnet-110", "preact-resnet", "wrn", "wrn-svhn", "resnext", "stochastic-depth", "imagenet", "mlp-mnist"} {
		if !names[want] {
			t.Errorf("recipe %s missing", want)
		}
	}
	he, _ := RecipeConfig("he-resnet")
	if he.BatchSize != 128 || he.Iterations != 64000 || he.WeightDecay != 1e-4 || he.Momentum != 0.9 {
		t.Errorf("he-resnet: %+v", he)
	}
	wrn, _ := RecipeConfig("wrn")
	if !wrn.Nesterov || wrn.Dampening != 0 || wrn.WeightDecay != 5e-4 || wrn.Gamma != 0.2 || wrn.Epochs != 200 {
		t.Errorf("wrn: %+v", wrn)
	}
	in, _ := RecipeConfig("imagenet")
	if in.BatchSize != 256 || in.StepEvery != 30 || in.Epochs != 120 {
		t.Errorf("imagenet: %+v", in)
	}
	// Recipes are copies.
	wrn.Milestones[0] = 1
	if again, _ := RecipeConfig("wrn"); again.Milestones[0] != 60 {
		t.Error("changing a recipe's milestones changed the table")
	}
	if _, err := RecipeConfig("nope"); err == nil || !strings.Contains(err.Error(), "he-resnet") {
		t.Errorf("unknown recipe: %v", err)
	}
}

func TestValidateNamesFields(t *testing.T) {
	c, _ := RecipeConfig("wrn")
	c.LR = -1
	c.BatchSize = 0
	c.Nesterov, c.Momentum = true, 0
	c.Milestones = []int{60, 50}
	c.MilestoneUnit = "weeks"
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"lr must be > 0, got -1", "batch_size must be > 0, got 0", "nesterov requires momentum > 0",
		"milestones must increase, got 50 after 60", `milestone_unit must be epoch or iteration, got "weeks"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	c = Config{BatchSize: 1, LR: 1}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "epochs or iterations must be > 0") {
		t.Errorf("no length: %v", err)
	}
	c = Config{BatchSize: 1, LR: 1, Epochs: 1, WarmupIters: 3}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "warmup_lr must be > 0") {
		t.Errorf("warm-up without lr: %v", err)
	}
}

func TestConfigSet(t *testing.T) {
	c, _ := RecipeConfig("resnext")
	for name, val := range map[string]string{"lr": "0.05", "weight-decay": "1e-3", "nesterov": "true", "milestones": "1, 2,3",
		"seed": "42", "batch_size": "64", "milestone_unit": "iteration"} {
		if err := c.Set(name, val); err != nil {
			t.Fatalf("Set(%s, %s): %v", name, val, err)
		}
	}
	if c.LR != 0.05 || c.WeightDecay != 1e-3 || !c.Nesterov || len(c.Milestones) != 3 || c.Milestones[2] != 3 ||
		c.Seed != 42 || c.BatchSize != 64 || c.MilestoneUnit != "iteration" {
		t.Errorf("after Set: %+v", c)
	}
	if err := c.Set("lr", "fast"); err == nil || !strings.Contains(err.Error(), "lr") {
		t.Errorf("bad value: %v", err)
	}
	if err := c.Set("learning_rate", "1"); err == nil || !strings.Contains(err.Error(), "weight_decay") {
		t.Errorf("unknown field: %v", err)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.json")
	os.WriteFile(path, []byte(`{"recipe": "wrn", "lr": 0.05, "epochs": 10, "milestones": [3, 6]}`), 0o644)
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.LR != 0.05 || c.Epochs != 10 || c.WeightDecay != 5e-4 || !c.Nesterov || len(c.Milestones) != 2 {
		t.Errorf("loaded %+v", c)
	}
	os.WriteFile(path, []byte(`{"recipe": "wrn", "lrr": 0.05}`), 0o644)
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "lrr") || !strings.Contains(err.Error(), path) {
		t.Errorf("unknown field: %v", err)
	}
	os.WriteFile(path, []byte(`{"recipe": "wide"}`), 0o644)
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "wide") {
		t.Errorf("unknown recipe: %v", err)
	}
}

func TestFlags(t *testing.T) {
	fs := pflag.NewFlagSet("train", pflag.ContinueOnError)
	AddFlags(fs)
	if err := fs.Parse([]string{"--lr=0.2", "--nesterov", "--milestones", "5,7", "--weight-decay", "0"}); err != nil {
		t.Fatal(err)
	}
	c, _ := RecipeConfig("he-resnet")
	if err := c.ApplyFlags(fs); err != nil {
		t.Fatal(err)
	}
	if c.LR != 0.2 || !c.Nesterov || c.Milestones[1] != 7 || c.WeightDecay != 0 || c.BatchSize != 128 {
		t.Errorf("after flags: %+v", c)
	}
	fs = pflag.NewFlagSet("train", pflag.ContinueOnError)
	AddFlags(fs)
	fs.Parse([]string{"--epochs=many"})
	if err := c.ApplyFlags(fs); err == nil || !strings.Contains(err.Error(), "--epochs") {
		t.Errorf("bad flag: %v", err)
	}
	if fs.Lookup("recipe") != nil || fs.Lookup("batch-size") == nil {
		t.Error("flag set")
	}
}

func TestHashAndDiff(t *testing.T) {
	a, _ := RecipeConfig("wrn")
	b := a
	b.Commit, b.CheckpointEvery = "abc", 5
	if a.Hash() != b.Hash() {
		t.Error("commit or checkpoint_every changed the hash")
	}
	b.LR = 0.2
	if a.Hash() == b.Hash() {
		t.Error("lr did not change the hash")
	}
	d := a.Diff(b)
	if len(d) != 3 || !strings.Contains(strings.Join(d, ";"), "lr: 0.1 vs 0.2") {
		t.Errorf("diff %v", d)
	}
}
