package train

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Scorer is implemented by loss ops that count correct predictions of the
// last pass (obtained as lossNode.Op().(Scorer)): Correct(k) is the number
// of labelled examples whose label is among the k highest logits, Count the
// number of labelled examples (rows with label -1 excluded). Without it the
// trainer reports only the loss.
type Scorer interface {
	Correct(k int) int
	Count() int
}

// Metrics summarises a model on a data set. Errors are percentages, as in
// the paper's tables; they are NaN when the loss op is not a Scorer (and
// every field is NaN when there was no data), written as null in JSON and
// left empty in CSV.
type Metrics struct {
	Loss     float64
	Top1Err  float64
	Top5Err  float64
	Examples int
}

func noMetrics() Metrics { return Metrics{Loss: math.NaN(), Top1Err: math.NaN(), Top5Err: math.NaN()} }

type metricsJSON struct {
	Loss     *float64 `json:"loss"`
	Top1Err  *float64 `json:"top1_err"`
	Top5Err  *float64 `json:"top5_err"`
	Examples int      `json:"examples"`
}

func nullable(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

func orNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

// MarshalJSON writes NaN as null.
func (m Metrics) MarshalJSON() ([]byte, error) {
	return json.Marshal(metricsJSON{nullable(m.Loss), nullable(m.Top1Err), nullable(m.Top5Err), m.Examples})
}

// UnmarshalJSON reads null as NaN.
func (m *Metrics) UnmarshalJSON(b []byte) error {
	var j metricsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*m = Metrics{orNaN(j.Loss), orNaN(j.Top1Err), orNaN(j.Top5Err), j.Examples}
	return nil
}

// metrics turns an accumulator into averages.
func (r Running) metrics() Metrics {
	m := noMetrics()
	m.Examples = r.Examples
	if r.Weight > 0 {
		m.Loss = r.LossSum / float64(r.Weight)
	}
	if r.Scored > 0 {
		m.Top1Err = 100 * float64(r.Scored-r.Correct1) / float64(r.Scored)
		m.Top5Err = 100 * float64(r.Scored-r.Correct5) / float64(r.Scored)
	}
	return m
}

// EpochMetrics is one row of metrics.csv. Train metrics are running
// averages over the epoch's mini-batches, in training mode, as the weights
// change (as the paper's curves and most training scripts report them);
// test metrics are computed after the epoch in inference mode.
type EpochMetrics struct {
	// Epoch counts epochs from 1; the last epoch of an iteration-bounded
	// run may be partial.
	Epoch int `json:"epoch"`
	// Step is the number of optimizer steps at the end of the epoch.
	Step int `json:"step"`
	// LR is the learning rate of the epoch's last step.
	LR    float64 `json:"lr"`
	Train Metrics `json:"train"`
	Test  Metrics `json:"test"`
	// Seconds is the epoch's training time, ImagesPerSec its throughput;
	// they are the only fields that differ between identical runs.
	Seconds      float64 `json:"seconds"`
	ImagesPerSec float64 `json:"images_per_sec"`
}

// Result is a finished run, as written to results.json.
type Result struct {
	Recipe     string `json:"recipe"`
	Seed       uint64 `json:"seed"`
	Commit     string `json:"commit"`
	ConfigHash string `json:"config_hash"`
	// Identity is Options.Identity: what besides the config decides the run.
	Identity map[string]string `json:"identity,omitempty"`
	Dir      string            `json:"dir"`
	// Epochs is the number of epochs run, Steps of optimizer steps.
	Epochs int `json:"epochs"`
	Steps  int `json:"steps"`
	// Final is the last epoch's metrics.
	Final EpochMetrics `json:"final"`
	// BestTestTop1Err is the lowest test top-1 error of any epoch, at BestEpoch
	// (NaN and 0 without test data or a Scorer). The paper reports Final.
	BestTestTop1Err float64        `json:"-"`
	BestEpoch       int            `json:"best_epoch"`
	History         []EpochMetrics `json:"history"`
	// Seconds is the total training time.
	Seconds float64 `json:"seconds"`
}

type resultJSON Result

// MarshalJSON writes NaN as null.
func (r Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		resultJSON
		Best *float64 `json:"best_test_top1_err"`
	}{resultJSON(r), nullable(r.BestTestTop1Err)})
}

// UnmarshalJSON reads null as NaN.
func (r *Result) UnmarshalJSON(b []byte) error {
	var j struct {
		resultJSON
		Best *float64 `json:"best_test_top1_err"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = Result(j.resultJSON)
	r.BestTestTop1Err = orNaN(j.Best)
	return nil
}

// metricsHeader is the header of metrics.csv.
var metricsHeader = []string{"epoch", "step", "lr", "train_loss", "train_top1_err", "train_top5_err",
	"test_loss", "test_top1_err", "test_top5_err", "seconds", "images_per_sec"}

func csvFloat(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return ""
	}
	return strconv.FormatFloat(x, 'g', -1, 64)
}

// MetricsCSV renders the history as metrics.csv: one row per epoch, empty
// cells for missing values.
func MetricsCSV(history []EpochMetrics) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(metricsHeader)
	for _, e := range history {
		w.Write([]string{strconv.Itoa(e.Epoch), strconv.Itoa(e.Step), csvFloat(e.LR),
			csvFloat(e.Train.Loss), csvFloat(e.Train.Top1Err), csvFloat(e.Train.Top5Err),
			csvFloat(e.Test.Loss), csvFloat(e.Test.Top1Err), csvFloat(e.Test.Top5Err),
			csvFloat(e.Seconds), csvFloat(e.ImagesPerSec)})
	}
	w.Flush()
	return b.Bytes()
}

// ParseMetricsCSV reads metrics.csv back (the example counts are not in it).
func ParseMetricsCSV(b []byte) ([]EpochMetrics, error) {
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("metrics csv: %w", err)
	}
	if len(rows) == 0 || strings.Join(rows[0], ",") != strings.Join(metricsHeader, ",") {
		return nil, fmt.Errorf("metrics csv: header is not %s", strings.Join(metricsHeader, ","))
	}
	var out []EpochMetrics
	for i, r := range rows[1:] {
		f := make([]float64, len(r))
		for j, s := range r {
			if s == "" {
				f[j] = math.NaN()
				continue
			}
			if f[j], err = strconv.ParseFloat(s, 64); err != nil {
				return nil, fmt.Errorf("metrics csv: row %d, column %s: %w", i+1, metricsHeader[j], err)
			}
		}
		out = append(out, EpochMetrics{Epoch: int(f[0]), Step: int(f[1]), LR: f[2],
			Train:   Metrics{Loss: f[3], Top1Err: f[4], Top5Err: f[5]},
			Test:    Metrics{Loss: f[6], Top1Err: f[7], Top5Err: f[8]},
			Seconds: f[9], ImagesPerSec: f[10]})
	}
	return out, nil
}

// Stat is a mean and a sample standard deviation (n-1 denominator) over
// the N runs with a finite value.
type Stat struct {
	Mean, Std float64
	N         int
}

// String is "mean ± std" with two decimals, as the paper writes it; a
// single run prints its value alone and no run prints "-".
func (s Stat) String() string {
	switch {
	case s.N == 0:
		return "-"
	case s.N == 1:
		return fmt.Sprintf("%.2f", s.Mean)
	}
	return fmt.Sprintf("%.2f ± %.2f", s.Mean, s.Std)
}

// MarshalJSON writes NaN as null.
func (s Stat) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Mean *float64 `json:"mean"`
		Std  *float64 `json:"std"`
		N    int      `json:"n"`
	}{nullable(s.Mean), nullable(s.Std), s.N})
}

// NewStat computes the statistic over the finite values of xs.
func NewStat(xs []float64) Stat {
	var s Stat
	var sum float64
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			sum += x
			s.N++
		}
	}
	if s.N == 0 {
		return Stat{Mean: math.NaN(), Std: math.NaN()}
	}
	s.Mean = sum / float64(s.N)
	if s.N > 1 {
		var ss float64
		for _, x := range xs {
			if !math.IsNaN(x) && !math.IsInf(x, 0) {
				ss += (x - s.Mean) * (x - s.Mean)
			}
		}
		s.Std = math.Sqrt(ss / float64(s.N-1))
	}
	return s
}

// Summary is the mean ± std of the final metrics of several runs of one
// configuration (seeds), as the paper reports five runs.
type Summary struct {
	Runs         int      `json:"runs"`
	Seeds        []uint64 `json:"seeds"`
	TrainLoss    Stat     `json:"train_loss"`
	TrainTop1Err Stat     `json:"train_top1_err"`
	TrainTop5Err Stat     `json:"train_top5_err"`
	TestLoss     Stat     `json:"test_loss"`
	TestTop1Err  Stat     `json:"test_top1_err"`
	TestTop5Err  Stat     `json:"test_top5_err"`
}

// Summarize computes mean and sample std of the final metrics over runs.
func Summarize(rs []Result) Summary {
	s := Summary{Runs: len(rs)}
	col := func(f func(EpochMetrics) float64) Stat {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = f(r.Final)
		}
		return NewStat(xs)
	}
	for _, r := range rs {
		s.Seeds = append(s.Seeds, r.Seed)
	}
	s.TrainLoss = col(func(e EpochMetrics) float64 { return e.Train.Loss })
	s.TrainTop1Err = col(func(e EpochMetrics) float64 { return e.Train.Top1Err })
	s.TrainTop5Err = col(func(e EpochMetrics) float64 { return e.Train.Top5Err })
	s.TestLoss = col(func(e EpochMetrics) float64 { return e.Test.Loss })
	s.TestTop1Err = col(func(e EpochMetrics) float64 { return e.Test.Top1Err })
	s.TestTop5Err = col(func(e EpochMetrics) float64 { return e.Test.Top5Err })
	return s
}

// MarkdownTable renders a GitHub-flavoured Markdown table; rows shorter
// than the header are padded with empty cells, and pipes are escaped.
func MarkdownTable(header []string, rows [][]string) string {
	var b strings.Builder
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	line := func(cells []string) {
		b.WriteString("|")
		for i := range header {
			c := ""
			if i < len(cells) {
				c = esc(cells[i])
			}
			b.WriteString(" " + c + " |")
		}
		b.WriteString("\n")
	}
	line(header)
	b.WriteString("|")
	for range header {
		b.WriteString(" --- |")
	}
	b.WriteString("\n")
	for _, r := range rows {
		line(r)
	}
	return b.String()
}

// SummaryTable renders one row per named summary: runs, train and test
// top-1 error (%) and loss, each as mean ± std.
func SummaryTable(names []string, ss []Summary) string {
	header := []string{"Model", "Runs", "Train top-1 err (%)", "Test top-1 err (%)", "Test top-5 err (%)", "Train loss", "Test loss"}
	var rows [][]string
	for i, s := range ss {
		name := ""
		if i < len(names) {
			name = names[i]
		}
		rows = append(rows, []string{name, strconv.Itoa(s.Runs), s.TrainTop1Err.String(), s.TestTop1Err.String(),
			s.TestTop5Err.String(), s.TrainLoss.String(), s.TestLoss.String()})
	}
	return MarkdownTable(header, rows)
}
