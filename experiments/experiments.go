// Package experiments holds the paper's figures and tables as programs.
//
// An experiment is a list of jobs (one training run each: an architecture, a
// data set, an erase setting, a seed) at one of three scales, and a report
// that turns the jobs' results into the paper's table or figure, with the
// paper's numbers beside ours. Jobs are independent, so an experiment can run
// in shards (locally or on a cluster) and be merged afterwards.
package experiments

import "fmt"

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

// Job is one training run of an experiment.
type Job struct {
	// ID is unique within the experiment and names the job's run directory.
	ID string `json:"id"`
	// Group is the table cell or curve the job contributes to (seeds of one
	// configuration share it).
	Group string `json:"group"`
}
