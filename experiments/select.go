package experiments

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/eraserelu/eraserelu/train"
)

// Selection is the paper's choice of the EraseReLU proportion (section 4.2:
// "selected from {25%, 50%, 75%, 100%} according to validation sets"): each
// candidate trains on a stratified split of the training set and is
// evaluated on the held-out part; the candidate with the lowest validation
// error is chosen (the first listed on a tie), and the job then trains with
// it on the full training set and is tested on the test set.
type Selection struct {
	Candidates []float64 `json:"candidates"`
	// Validation is the fraction of each class held out for validation.
	Validation float64 `json:"validation"`
	// Seed trains the candidates: one selection serves every seed of a
	// group, as the paper fixes the proportion per architecture.
	Seed uint64 `json:"seed"`
	// ValErr is each candidate's validation top-1 error (%) and Chosen the
	// proportion picked; both are filled in by the run.
	ValErr []float64 `json:"val_err,omitempty"`
	Chosen float64   `json:"chosen"`
}

// DefaultCandidates are the paper's proportions.
var DefaultCandidates = []float64{0.25, 0.5, 0.75, 1}

// DefaultValidation is the fraction of each class held out. Ours: the paper
// does not say how large its validation sets were; 10% keeps 90% of the
// data for training the candidates.
const DefaultValidation = 0.1

// NewSelection checks a selection's settings: candidates in (0, 1], a
// validation fraction in (0, 1).
func NewSelection(candidates []float64, validation float64) (*Selection, error) {
	if len(candidates) == 0 {
		return nil, fmt.Errorf("select: --candidates: no proportions given")
	}
	for _, p := range candidates {
		if !(p > 0 && p <= 1) {
			return nil, fmt.Errorf("select: --candidates: proportion %v is outside (0, 1]", p)
		}
	}
	if !(validation > 0 && validation < 1) {
		return nil, fmt.Errorf("select: --validation %v: want a fraction in (0, 1)", validation)
	}
	return &Selection{Candidates: append([]float64(nil), candidates...), Validation: validation, Seed: 1}, nil
}

// selectionDir holds a group's candidate runs, beside the experiment's job
// directories (Collect skips it: it holds no job.json itself). Every seed's
// job of a group reaches the same candidates: a finished one is reused, and
// two shards that train one candidate at once each write whole files
// atomically (metrics, results, checkpoints), so a complete run remains.
func selectionDir(dir string, job Job) string {
	return filepath.Join(dir, sanitize(job.Group)+"-select")
}

// candidateJobs are the selection's training runs on the validation split.
func candidateJobs(job Job) []Job {
	sel := job.Selection
	out := make([]Job, len(sel.Candidates))
	for i, p := range sel.Candidates {
		c := job
		c.Selection = nil
		c.Erase, c.Validation, c.Seed = p, sel.Validation, sel.Seed
		c.Group = job.Group + "-select"
		c.ID = "p" + strconv.FormatFloat(100*p, 'f', -1, 64)
		out[i] = c
	}
	return out
}

// runSelection trains (or finds finished) the candidates of job's selection
// and returns the selection with their validation errors and the choice; it
// also writes it to the selection directory.
func runSelection(ctx context.Context, env Env, job Job, dir string) (*Selection, error) {
	sel := *job.Selection
	sel.ValErr = nil
	selDir := selectionDir(dir, job)
	best := -1
	for i, c := range candidateJobs(job) {
		r, err := RunJob(ctx, env, c, selDir)
		if err != nil {
			return nil, fmt.Errorf("select: candidate %s: %w", pct(c.Erase), err)
		}
		sel.ValErr = append(sel.ValErr, r.Final.Test.Top1Err)
		if best < 0 || r.Final.Test.Top1Err < sel.ValErr[best] {
			best = i
		}
	}
	sel.Chosen = sel.Candidates[best]
	if err := writeJSON(filepath.Join(selDir, "selection.json"), sel); err != nil {
		return nil, err
	}
	return &sel, nil
}

// SelectionReport is the Markdown of a selection and the job trained with
// its choice: each candidate's validation error, the choice, the final
// test error.
func SelectionReport(job Job, res train.Result) string {
	sel := job.Selection
	var b strings.Builder
	fmt.Fprintf(&b, "## Proportion selection: %s on %s\n\n", job.Arch, job.Dataset)
	fmt.Fprintf(&b, "Candidates trained on %s of each class's training images, validated on the other %s (stratified, fixed split), seed %d.\n\n",
		pct(1-sel.Validation), pct(sel.Validation), sel.Seed)
	var rows [][]string
	for i, p := range sel.Candidates {
		mark := ""
		if p == sel.Chosen {
			mark = "chosen"
		}
		v := "-"
		if i < len(sel.ValErr) {
			v = fmt.Sprintf("%.2f", sel.ValErr[i])
		}
		rows = append(rows, []string{pct(p), v, mark})
	}
	b.WriteString(train.MarkdownTable([]string{"Proportion", "Validation top-1 err (%)", ""}, rows))
	fmt.Fprintf(&b, "\nRetrained with %s on the full training set (seed %d): test top-1 error %.2f%%, top-5 %.2f%%, train top-1 error %.2f%%, %d epochs.\n",
		pct(sel.Chosen), job.Seed, res.Final.Test.Top1Err, res.Final.Test.Top5Err, res.Final.Train.Top1Err, res.Epochs)
	return b.String()
}

// RunSelect is `eraserelu select`: job (with a Selection) trained into
// dir/<job.ID> after its selection, resumable like any job; it returns
// SelectionReport and writes it to the run directory as selection.md.
func RunSelect(ctx context.Context, env Env, job Job, dir string) (string, error) {
	if job.Selection == nil {
		return "", fmt.Errorf("select: job %s has no selection", job.ID)
	}
	res, err := RunJob(ctx, env, job, dir)
	if err != nil {
		return "", err
	}
	runDir := filepath.Join(dir, job.ID)
	done, err := readJob(runDir)
	if err != nil {
		return "", err
	}
	md := SelectionReport(done, res)
	return md, writeFile(filepath.Join(runDir, "selection.md"), []byte(md))
}
