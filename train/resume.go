package train

import (
	"fmt"
	"sort"
	"strings"
)

// checkResume compares the settings a checkpoint recorded with those a
// resume asks for. The same settings resume; more epochs (or more
// iterations, when the run counts them), with everything else the same,
// extend the run: the schedule is a function of the step and epoch alone,
// so the extended run matches one configured that long from the start.
// Any other difference is an error listing each differing field, since
// continuing would mix two runs' results.
func checkResume(dir string, st State, cfg Config, identity map[string]string) (extended bool, err error) {
	run := st.Config
	asked := cfg
	// Neither changes what is computed.
	run.Commit, asked.Commit = "", ""
	run.CheckpointEvery = asked.CheckpointEvery
	if asked.Epochs > run.Epochs && run.Epochs > 0 {
		run.Epochs, extended = asked.Epochs, true
	}
	if asked.Iterations > run.Iterations && run.Iterations > 0 {
		run.Iterations, extended = asked.Iterations, true
	}
	diffs := run.Diff(asked)
	diffs = append(diffs, identityDiff(st.Identity, identity)...)
	if len(diffs) == 0 {
		return extended, nil
	}
	return false, fmt.Errorf("resume %s: the run was trained with other settings (the run's value vs the one asked for): %s. "+
		"A run can only be extended (more epochs or iterations, nothing else changed); train into a new --out for other settings",
		dir, strings.Join(diffs, "; "))
}

// identityDiff lists the keys whose values differ, a missing key reading "(none)".
func identityDiff(run, asked map[string]string) []string {
	keys := map[string]bool{}
	for k := range run {
		keys[k] = true
	}
	for k := range asked {
		keys[k] = true
	}
	var out []string
	for k := range keys {
		a, aok := run[k]
		b, bok := asked[k]
		if a == b && aok == bok {
			continue
		}
		if !aok {
			a = "(none)"
		}
		if !bok {
			b = "(none)"
		}
		out = append(out, fmt.Sprintf("%s: %s vs %s", k, a, b))
	}
	sort.Strings(out)
	return out
}
