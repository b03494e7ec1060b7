package experiments

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sharedData is the read-only data folder beside the repository.
func sharedData(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../../shared/datasets")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "mnist")); err != nil {
		t.Skipf("real data not available at %s: %v", dir, err)
	}
	return dir
}

func TestFig3cSmoke(t *testing.T) {
	env := Env{DataDir: sharedData(t)}
	e, err := Find("fig3c")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	md, err := Run(context.Background(), env, e, RunOptions{Scale: Smoke, Shard: All, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| mnist | 0% |", "| mnist | 50% |", "fig3c.png"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "fig3c", "fig3c.png")); err != nil {
		t.Error(err)
	}
}

func TestFig4Smoke(t *testing.T) {
	e, _ := Find("fig4")
	out := t.TempDir()
	md, err := Run(context.Background(), Env{}, e, RunOptions{Scale: Smoke, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md, "| 8 | EraseReLU 100% |") || !strings.Contains(md, "fig4-depth8-relu.png") {
		t.Errorf("report:\n%s", md)
	}
}

// TestTable1Smoke trains every Table 1 variant (PReLU-all/sum, ER*, ER,
// stochastic depth, ...) on real CIFAR-10 images for one tiny epoch, and
// checks the report lists them beside the paper's numbers.
func TestTable1Smoke(t *testing.T) {
	env := Env{DataDir: sharedData(t)}
	if _, err := os.Stat(filepath.Join(env.DataDir, "cifar10-jpeg.tar.gz")); err != nil {
		t.Skip("no CIFAR-10 copy")
	}
	e, _ := Find("table1")
	md, err := Run(context.Background(), env, e, RunOptions{Scale: Smoke, Shard: All, Out: t.TempDir(), Dataset: "cifar10"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PReLU-all", "ER†+SDR", "(paper -)", "| test | 8 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// TestTable2SmokeSelects runs Table 2 at smoke scale: the EraseReLU columns
// choose their proportion on a validation split first, and the report shows
// every candidate, the choice and the comparison with its verdict.
func TestTable2SmokeSelects(t *testing.T) {
	env := Env{DataDir: sharedData(t)}
	if _, err := os.Stat(filepath.Join(env.DataDir, "cifar10-jpeg.tar.gz")); err != nil {
		t.Skip("no CIFAR-10 copy")
	}
	e, _ := Find("table2")
	out := t.TempDir()
	md, err := Run(context.Background(), env, e, RunOptions{Scale: Smoke, Shard: All, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"(validation)", "Validation error by proportion", "| inception-v2-3 | cifar10 |", "50%: ", "100%: ",
		"inconclusive (n too small)", "Paper's choice"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	results, err := Collect(filepath.Join(out, "table2"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		sel := r.Job.Selection
		if sel == nil {
			continue
		}
		best := 0
		for i, v := range sel.ValErr {
			if v < sel.ValErr[best] {
				best = i
			}
		}
		if len(sel.ValErr) != 2 || r.Job.Erase != sel.Candidates[best] || sel.Chosen != r.Job.Erase {
			t.Errorf("job %s: erase %v, selection %+v", r.Job.ID, r.Job.Erase, sel)
		}
	}
}
