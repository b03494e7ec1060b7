package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestFaultsCI is the fault-injection suite at CI scale: a 3-epoch MLP on
// 500 MNIST images, killed 3 times (steps, evaluation, checkpoint writes),
// one flipped byte resumed from, every corruption class of its checkpoint,
// and a full disk when root.
func TestFaultsCI(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the fault suite runs the real binary")
	}
	data := filepath.Join("..", "..", "..", "shared", "datasets")
	loads, _, err := Workloads("ci", data)
	if err != nil {
		t.Skipf("no data for the fault suite: %v", err)
	}
	work := t.TempDir()
	bin := filepath.Join(work, "eraserelu")
	build := exec.Command("go", "build", "-o", bin, "./cmd/eraserelu")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var log bytes.Buffer
	s := &Suite{Bin: bin, Work: work, Seed: 1, Out: &log}
	f := s.Run(loads, true)
	f.Print(&log)
	t.Log("\n" + log.String())
	if !f.OK() || f.KillsTried < 3 || f.Runs < 2 || f.CorruptTried < 20 {
		t.Errorf("fault suite failed or ran too little:\n%s", log.String())
	}
	if f.KillPhases["checkpoint"] == 0 || f.KillPhases["eval"] == 0 {
		t.Errorf("no kill landed during a checkpoint write or an evaluation: %v", f.KillPhases)
	}
}
