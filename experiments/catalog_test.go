package experiments

import (
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/train"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

// TestCatalogJobsAreValid checks every job of every experiment at every
// scale: the architecture parses, the recipe exists, the overrides apply and
// validate, the erase settings parse, and IDs are unique.
func TestCatalogJobsAreValid(t *testing.T) {
	for _, e := range Catalog() {
		if e.Jobs == nil {
			if e.Direct == nil {
				t.Errorf("%s has neither jobs nor a direct run", e.Name)
			}
			continue
		}
		for _, s := range []Scale{Smoke, Quick, Paper} {
			jobs, err := e.Jobs(s)
			if err != nil {
				t.Fatalf("%s/%s: %v", e.Name, s, err)
			}
			if len(jobs) == 0 {
				t.Errorf("%s/%s: no jobs", e.Name, s)
			}
			ids := map[string]bool{}
			for _, j := range jobs {
				if ids[j.ID] {
					t.Errorf("%s/%s: duplicate job ID %s", e.Name, s, j.ID)
				}
				ids[j.ID] = true
				if _, err := arch.Parse(j.Arch); err != nil {
					t.Errorf("%s/%s job %s: %v", e.Name, s, j.ID, err)
				}
				cfg, err := train.RecipeConfig(j.Recipe)
				if err != nil {
					t.Errorf("%s/%s job %s: %v", e.Name, s, j.ID, err)
					continue
				}
				for k, v := range j.Overrides {
					if err := cfg.Set(k, v); err != nil {
						t.Errorf("%s/%s job %s: override %s=%s: %v", e.Name, s, j.ID, k, v, err)
					}
				}
				if err := cfg.Validate(); err != nil {
					t.Errorf("%s/%s job %s: %v", e.Name, s, j.ID, err)
				}
				if _, err := erase.ParseLocation(j.Location); err != nil {
					t.Errorf("%s/%s job %s: %v", e.Name, s, j.ID, err)
				}
				if j.Erase < 0 || j.Erase > 1 {
					t.Errorf("%s/%s job %s: proportion %v", e.Name, s, j.ID, j.Erase)
				}
				if j.Selection != nil {
					if _, err := NewSelection(j.Selection.Candidates, j.Selection.Validation); err != nil {
						t.Errorf("%s/%s job %s: %v", e.Name, s, j.ID, err)
					}
				}
			}
		}
	}
}

// TestSmokeBuildsEveryNet builds (and erases as the job says) the network of
// every smoke job whose data set is at hand, without training.
func TestSmokeBuildsEveryNet(t *testing.T) {
	for _, e := range Catalog() {
		if e.Jobs == nil {
			continue
		}
		jobs, _ := e.Jobs(Smoke)
		for _, j := range jobs {
			if j.Dataset == "imagenet" {
				continue // 224x224 nets: counted in arch's tests, not built here
			}
			in := [3]int{3, 32, 32}
			if j.Dataset == "mnist" {
				in = [3]int{1, 28, 28}
			}
			if _, err := BuildNet(NetSpec{Arch: j.Arch, Classes: 10, Batch: 2, Input: in, Seed: 1, Erase: j.Erase,
				Location: j.Location, Replacement: j.Replacement, AfterActivation: j.AfterActivation, StochasticDepth: j.StochasticDepth}); err != nil {
				t.Errorf("%s job %s: %v", e.Name, j.ID, err)
			}
		}
	}
}

// TestPReLUAllReplacesEveryReLU: Table 1's PReLU-all replaces "all ReLU
// layers", the stem's included; PReLU-sum keeps the stem's ReLU.
func TestPReLUAllReplacesEveryReLU(t *testing.T) {
	for _, v := range table1Variants {
		if v.replacement != "prelu" {
			continue
		}
		g, err := BuildNet(NetSpec{Arch: "resnet-8", Classes: 10, Batch: 2, Input: [3]int{3, 32, 32}, Seed: 1, Erase: v.erase,
			Location: v.location, Replacement: v.replacement, EveryReLU: v.everyReLU})
		if err != nil {
			t.Fatal(err)
		}
		want := 0 // PReLU-all
		if v.name == "PReLU-sum" {
			want = 1 + 3 // the stem's and each block's middle ReLU
		}
		if got := erase.CountReLUs(g); got != want {
			t.Errorf("%s: %d ReLUs left, want %d", v.name, got, want)
		}
	}
}

// TestWRNDropoutOnSVHN: WRN-*-D on SVHN trains with Zagoruyko &
// Komodakis's SVHN dropout 0.4, elsewhere with the family's default.
func TestWRNDropoutOnSVHN(t *testing.T) {
	jobs, err := table2().Jobs(Paper)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, j := range jobs {
		want := 0.0
		if j.Arch == "wrn-52-1-d" && j.Dataset == "svhn" {
			want, n = 0.4, n+1
		}
		if j.Dropout != want {
			t.Errorf("job %s: dropout %v, want %v", j.ID, j.Dropout, want)
		}
	}
	if n == 0 {
		t.Error("no WRN-52-1-D SVHN job")
	}
}

// TestFitTitle: every line of a wrapped title fits the width.
func TestFitTitle(t *testing.T) {
	p := plot.New()
	p.Title.Text = fig3c().Title
	width := 12*vg.Centimeter - vg.Centimeter/2
	if p.Title.TextStyle.Width(p.Title.Text) <= width {
		t.Fatal("the test title already fits: it tests nothing")
	}
	fitTitle(p, width)
	lines := strings.Split(p.Title.Text, "\n")
	if len(lines) < 2 || strings.Join(lines, " ") != fig3c().Title {
		t.Errorf("wrapped title %q", p.Title.Text)
	}
	for _, l := range lines {
		if w := p.Title.TextStyle.Width(l); w > width {
			t.Errorf("line %q is %v wide, more than %v", l, w, width)
		}
	}
}
