package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestTrainExtendsOrRefuses: `train --epochs 2` on a finished 1-epoch run
// directory continues it to the result of a 2-epoch run; a changed erase
// proportion or fewer epochs are refused, naming the field.
func TestTrainExtendsOrRefuses(t *testing.T) {
	data := sharedData(t)
	args := func(dir string, extra ...string) []string {
		return append([]string{"train", "--arch", "mlp-3", "--dataset", "mnist", "--data", data, "--recipe", "mlp-mnist", "--erase", "0.5",
			"--train-per-class", "10", "--test-per-class", "5", "--batch-size", "20", "--out", dir}, extra...)
	}
	root := t.TempDir()
	straight, extended := filepath.Join(root, "straight"), filepath.Join(root, "extended")
	if _, err := run(t, args(straight, "--epochs", "2")...); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, args(extended, "--epochs", "1")...); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, args(extended, "--epochs", "2")...)
	if err != nil || !strings.Contains(out, "2 epochs") {
		t.Fatalf("extension: %v\n%s", err, out)
	}
	if a, b := readHistory(t, straight), readHistory(t, extended); a != b {
		t.Errorf("extended run differs from the 2-epoch run:\n%s\n%s", b, a)
	}
	for _, c := range []struct {
		extra []string
		want  string
	}{
		{[]string{"--epochs", "2", "--erase", "1"}, "erase: 0.5 vs 1"},
		{[]string{"--epochs", "1"}, "epochs: 2 vs 1"},
		{[]string{"--epochs", "2", "--lr", "0.5"}, "lr: 0.01 vs 0.5"},
	} {
		_, err := run(t, args(extended, c.extra...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "new --out") {
			t.Errorf("%v: %v, want an error naming %q", c.extra, err, c.want)
		}
	}
}
