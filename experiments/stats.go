package experiments

// The statistics every report uses to compare EraseReLU with the original
// network: the difference of the mean errors with a 95% confidence interval
// (paired by seed where the seeds pair, Welch otherwise) and a verdict by one
// stated rule (VerdictRule). The campaign runner's reports use the same
// functions, so a verdict means the same thing everywhere.

import (
	"fmt"
	"math"
	"sort"

	"github.com/eraserelu/eraserelu/train"
	"gonum.org/v1/gonum/stat/distuv"
)

// Confidence is the two-sided level of every interval in the reports.
const Confidence = 0.95

// Sample is one run's value (an error in %) and the seed it was trained with.
type Sample struct {
	Seed  uint64
	Value float64
}

// Claim is what the paper says about a comparison: the sign of its
// difference (EraseReLU minus original error: -1 when the paper reports a
// lower error with EraseReLU, +1 higher, 0 when it calls them comparable or
// gives no direction) and the paper's own difference in points, NaN where
// the paper gives no number for this setting.
type Claim struct {
	Sign  int
	Paper float64
}

// LowerError is the paper's general claim, where it gives no number for the
// setting: EraseReLU lowers the error.
var LowerError = Claim{Sign: -1, Paper: math.NaN()}

// ClaimFromPaper is the claim of a table cell: the sign and size of the
// paper's EraseReLU-minus-original difference.
func ClaimFromPaper(original, erased float64) Claim {
	d := erased - original
	s := 0
	switch {
	case d < 0:
		s = -1
	case d > 0:
		s = 1
	}
	return Claim{Sign: s, Paper: d}
}

// Margin is the equivalence margin of the verdict rule: half the paper's
// difference (NaN, no margin, where the paper gives none or reports none).
func (c Claim) Margin() float64 {
	if math.IsNaN(c.Paper) || c.Paper == 0 {
		return math.NaN()
	}
	return math.Abs(c.Paper) / 2
}

// Verdicts.
const (
	Reproduced    = "reproduced"
	NotReproduced = "not reproduced"
	Inconclusive  = "inconclusive"
)

// VerdictRule states the rule Compare applies; reports print it once.
const VerdictRule = `Verdict rule: d = mean test error with EraseReLU minus mean test error of the original, in points; ` +
	`its 95% confidence interval is a paired t-interval over seeds (n-1 degrees of freedom) when both sides ran the same seeds, ` +
	`else Welch's interval. "inconclusive (n too small)" when a side has fewer than 2 runs (nothing is called reproduced on one seed); ` +
	`"reproduced" when the interval excludes 0 on the side of the paper's difference; ` +
	`"not reproduced (opposite sign)" when it excludes 0 on the other side; ` +
	`"not reproduced (effect < half the paper's)" when the whole interval lies within ± half the paper's difference; ` +
	`otherwise "inconclusive (CI spans 0)". Where the paper calls the two comparable (difference 0, no direction), ` +
	`an interval that excludes 0 is "not reproduced" and any other is inconclusive.`

// Comparison is EraseReLU against the original on one setting.
type Comparison struct {
	// Diff is the mean of EraseReLU's errors minus the original's (points);
	// [Lo, Hi] its 95% confidence interval (NaN when n is too small).
	Diff, Lo, Hi float64
	// Paired says the interval is over per-seed differences; N is then the
	// number of pairs. Otherwise NOriginal and NErased runs, Welch's interval.
	Paired             bool
	N                  int
	NOriginal, NErased int
	// DoF is the t distribution's degrees of freedom.
	DoF     float64
	Claim   Claim
	Verdict string
}

// Compare computes the difference erased - original with its 95% interval
// and the verdict under the claim. Non-finite values are dropped.
func Compare(original, erased []Sample, claim Claim) Comparison {
	original, erased = finite(original), finite(erased)
	c := Comparison{Claim: claim, NOriginal: len(original), NErased: len(erased), Lo: math.NaN(), Hi: math.NaN(), DoF: math.NaN()}
	c.Diff = mean(values(erased)) - mean(values(original))
	if len(original) == 0 || len(erased) == 0 {
		c.Diff = math.NaN()
	}
	if ds, ok := pairedDiffs(original, erased); ok {
		c.Paired, c.N = true, len(ds)
		if len(ds) >= 2 {
			c.Diff = mean(ds)
			half, dof := tHalfWidth(sampleVar(ds)/float64(len(ds)), float64(len(ds)-1))
			c.Lo, c.Hi, c.DoF = c.Diff-half, c.Diff+half, dof
		}
	} else if len(original) >= 2 && len(erased) >= 2 {
		c.N = min(len(original), len(erased))
		vo, ve := sampleVar(values(original))/float64(len(original)), sampleVar(values(erased))/float64(len(erased))
		half, dof := tHalfWidth(vo+ve, welchDoF(vo, ve, len(original), len(erased)))
		c.Lo, c.Hi, c.DoF = c.Diff-half, c.Diff+half, dof
	} else {
		c.N = min(len(original), len(erased))
	}
	c.Verdict = verdict(c.Lo, c.Hi, claim)
	return c
}

// verdict applies VerdictRule to an interval (NaN: n too small).
func verdict(lo, hi float64, claim Claim) string {
	if math.IsNaN(lo) || math.IsNaN(hi) {
		return Inconclusive + " (n too small)"
	}
	excludesBelow, excludesAbove := hi < 0, lo > 0 // the interval lies below / above 0
	if claim.Sign == 0 {
		if excludesBelow || excludesAbove {
			return NotReproduced + " (paper: comparable)"
		}
		return Inconclusive + " (CI spans 0)"
	}
	if excludesBelow && claim.Sign < 0 || excludesAbove && claim.Sign > 0 {
		return Reproduced
	}
	if excludesBelow || excludesAbove {
		return NotReproduced + " (opposite sign)"
	}
	if m := claim.Margin(); !math.IsNaN(m) && lo > -m && hi < m {
		return NotReproduced + " (effect < half the paper's)"
	}
	return Inconclusive + " (CI spans 0)"
}

// String is "d [lo, hi] (paired, n=5): verdict".
func (c Comparison) String() string {
	how := fmt.Sprintf("Welch, n=%d+%d", c.NOriginal, c.NErased)
	if c.Paired {
		how = fmt.Sprintf("paired, n=%d", c.N)
	}
	if math.IsNaN(c.Diff) {
		return "- (" + how + "): " + c.Verdict
	}
	if math.IsNaN(c.Lo) {
		return fmt.Sprintf("%+.2f (%s): %s", c.Diff, how, c.Verdict)
	}
	return fmt.Sprintf("%+.2f [%+.2f, %+.2f] (%s): %s", c.Diff, c.Lo, c.Hi, how, c.Verdict)
}

// TQuantile is the p-quantile of Student's t distribution with dof degrees
// of freedom (+Inf dof: the normal distribution).
func TQuantile(p, dof float64) float64 {
	if math.IsInf(dof, 1) {
		return distuv.UnitNormal.Quantile(p)
	}
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: dof}.Quantile(p)
}

// tHalfWidth is the half-width of the two-sided Confidence interval of a
// mean with variance v (of the mean) and dof degrees of freedom.
func tHalfWidth(v, dof float64) (half, usedDoF float64) {
	return TQuantile(1-(1-Confidence)/2, dof) * math.Sqrt(v), dof
}

// welchDoF is the Welch–Satterthwaite degrees of freedom of two means with
// variances va, vb (of the means) over na, nb runs. Two zero variances
// (identical runs) give the pooled na+nb-2.
func welchDoF(va, vb float64, na, nb int) float64 {
	den := va*va/float64(na-1) + vb*vb/float64(nb-1)
	if den == 0 {
		return float64(na + nb - 2)
	}
	return (va + vb) * (va + vb) / den
}

// pairedDiffs returns erased - original per seed when both sides ran the
// same set of seeds, each once.
func pairedDiffs(original, erased []Sample) ([]float64, bool) {
	if len(original) != len(erased) || len(original) == 0 {
		return nil, false
	}
	bySeed := map[uint64]float64{}
	for _, s := range original {
		if _, dup := bySeed[s.Seed]; dup {
			return nil, false
		}
		bySeed[s.Seed] = s.Value
	}
	seeds := make([]uint64, 0, len(erased))
	seen := map[uint64]bool{}
	for _, s := range erased {
		if _, ok := bySeed[s.Seed]; !ok || seen[s.Seed] {
			return nil, false
		}
		seen[s.Seed] = true
		seeds = append(seeds, s.Seed)
	}
	sort.Slice(seeds, func(a, b int) bool { return seeds[a] < seeds[b] })
	er := map[uint64]float64{}
	for _, s := range erased {
		er[s.Seed] = s.Value
	}
	ds := make([]float64, len(seeds))
	for i, seed := range seeds {
		ds[i] = er[seed] - bySeed[seed]
	}
	return ds, true
}

func finite(xs []Sample) []Sample {
	var out []Sample
	for _, x := range xs {
		if !math.IsNaN(x.Value) && !math.IsInf(x.Value, 0) {
			out = append(out, x)
		}
	}
	return out
}

func values(xs []Sample) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = x.Value
	}
	return out
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// sampleVar is the variance with the n-1 denominator.
func sampleVar(xs []float64) float64 {
	m := mean(xs)
	var ss float64
	for _, x := range xs {
		ss += (x - m) * (x - m)
	}
	return ss / float64(len(xs)-1)
}

// TestErrors is each run's final test top-1 error (%) with its seed.
func TestErrors(rs []JobResult) []Sample {
	out := make([]Sample, len(rs))
	for i, r := range rs {
		out[i] = Sample{Seed: r.Job.Seed, Value: r.Result.Final.Test.Top1Err}
	}
	return out
}

// StatCell is a statistic as the reports print it: "mean ± std (n=k)",
// the sample standard deviation over k seeds; one run prints "value (n=1)".
func StatCell(s train.Stat) string {
	if s.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%s (n=%d)", s.String(), s.N)
}
