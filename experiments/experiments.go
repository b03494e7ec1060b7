// Package experiments holds the paper's figures and tables as programs.
//
// An experiment is a list of jobs (one training run each: an architecture, a
// data set, an erase setting, a seed) at one of three scales, and a report
// that turns the jobs' results into the paper's table or figure, with the
// paper's numbers beside ours. Jobs are independent, so an experiment can run
// in shards (locally or on a cluster) and be merged afterwards by Report.
package experiments

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// Scale sizes an experiment.
type Scale string

const (
	// Smoke runs in seconds; the tests use it.
	Smoke Scale = "smoke"
	// Quick runs in minutes to an hour on 2 CPU cores.
	Quick Scale = "quick"
	// Paper uses the paper's full settings (GPU-scale for most).
	Paper Scale = "paper"
)

// ParseScale reads a scale name.
func ParseScale(s string) (Scale, error) {
	switch Scale(s) {
	case Smoke, Quick, Paper:
		return Scale(s), nil
	}
	return "", fmt.Errorf("--scale %q: valid scales are smoke, quick, paper", s)
}

// Experiment is one figure or table of the paper.
type Experiment struct {
	Name  string
	Title string
	// Jobs lists the training runs at a scale, for experiments made of them.
	Jobs func(Scale) ([]Job, error)
	// Direct runs an experiment that is not made of training runs (Figure 4)
	// and returns its report; it ignores sharding.
	Direct func(ctx context.Context, env Env, scale Scale, dir string) (string, error)
	// Report turns the results of Jobs into Markdown (and plots in dir).
	Report func(dir string, results []JobResult) (string, error)
}

// Catalog lists every experiment in the paper's order.
func Catalog() []*Experiment {
	return []*Experiment{fig3a(), fig3b(), fig3c(), fig3d(), fig4(), table1(), table2(), fig5(), table3(), fig6(), table4()}
}

// Find returns the experiment of that name.
func Find(name string) (*Experiment, error) {
	var names []string
	for _, e := range Catalog() {
		if e.Name == name {
			return e, nil
		}
		names = append(names, e.Name)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("unknown experiment %q (valid: %s)", name, strings.Join(names, ", "))
}
