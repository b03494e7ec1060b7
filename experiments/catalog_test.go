package experiments

import (
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/pipeline"
	"github.com/eraserelu/eraserelu/train"
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
			net, err := JobNet(j, 10, 2, in)
			if err == nil {
				_, err = pipeline.Build(net)
			}
			if err != nil {
				t.Errorf("%s job %s: %v", e.Name, j.ID, err)
			}
		}
	}
}
