package experiments

import (
	"math"
	"strings"
	"testing"
)

// TestTQuantile checks Student's t quantiles against published table values
// (e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.2), to their 3-4 decimals.
func TestTQuantile(t *testing.T) {
	for _, c := range []struct{ p, dof, want float64 }{
		{0.975, 1, 12.706},
		{0.975, 2, 4.303},
		{0.975, 3, 3.182},
		{0.975, 4, 2.776},
		{0.975, 9, 2.262},
		{0.975, 29, 2.045},
		{0.975, 100, 1.984},
		{0.975, math.Inf(1), 1.960},
		{0.95, 10, 1.812},
		{0.995, 5, 4.032},
		{0.025, 4, -2.776},
		{0.5, 7, 0},
	} {
		if got := TQuantile(c.p, c.dof); math.Abs(got-c.want) > 1e-3 {
			t.Errorf("TQuantile(%v, %v) = %.4f, want %.3f", c.p, c.dof, got, c.want)
		}
	}
}

func seeds(vals ...float64) []Sample {
	out := make([]Sample, len(vals))
	for i, v := range vals {
		out[i] = Sample{Seed: uint64(i + 1), Value: v}
	}
	return out
}

func TestCompareIntervals(t *testing.T) {
	nan := math.NaN()
	for _, c := range []struct {
		name              string
		original, erased  []Sample
		paired            bool
		diff, lo, hi, dof float64
	}{
		// Per-seed differences -1, -2, -3: mean -2, sd 1, se 1/sqrt(3), t(0.975, 2) = 4.3027.
		{"paired", seeds(10, 10, 10), seeds(9, 8, 7), true, -2, -2 - 4.302653/math.Sqrt(3), -2 + 4.302653/math.Sqrt(3), 2},
		// Seeds 1..4 against 1..3 do not pair: Welch. Original var 5/3 over 4 runs,
		// erased var 4 over 3: se^2 = 1.75, dof = 1.75^2 / ((5/12)^2/3 + (4/3)^2/2) = 3.2347.
		{"welch", seeds(1, 2, 3, 4), seeds(2, 4, 6), false, 1.5, nan, nan, 3.2347},
		{"one seed", seeds(10), seeds(9), true, -1, nan, nan, nan},
		{"one erased run, unpaired", seeds(1, 2), []Sample{{Seed: 7, Value: 1}}, false, -0.5, nan, nan, nan},
		// Identical runs: zero variance, a zero-width interval at the difference.
		{"deterministic", seeds(5, 5), []Sample{{Seed: 3, Value: 4}, {Seed: 4, Value: 4}}, false, -1, -1, -1, 2},
		// The NaN run of seed 3 is dropped; seeds 1, 2 against 1, 2, 3 do not pair.
		// Welch with one zero variance: erased var 64/3 over 3 runs, dof 2.
		{"non-finite dropped", []Sample{{1, 10}, {2, 10}, {3, nan}}, []Sample{{1, 9}, {2, 9}, {3, 1}}, false, -11.0 / 3,
			-11.0/3 - 4.302653*math.Sqrt(64.0/9), -11.0/3 + 4.302653*math.Sqrt(64.0/9), 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Compare(c.original, c.erased, LowerError)
			if got.Paired != c.paired {
				t.Errorf("paired = %v, want %v", got.Paired, c.paired)
			}
			near := func(what string, g, w float64) {
				if math.IsNaN(w) != math.IsNaN(g) || !math.IsNaN(w) && math.Abs(g-w) > 1e-4 {
					t.Errorf("%s = %v, want %v", what, g, w)
				}
			}
			near("diff", got.Diff, c.diff)
			near("dof", got.DoF, c.dof)
			if c.name == "welch" {
				q := TQuantile(0.975, c.dof) // fractional dof: between t(4) and t(3)
				if q < 2.776 || q > 3.182 {
					t.Errorf("t(0.975, %v) = %v, outside [2.776, 3.182]", c.dof, q)
				}
				c.lo, c.hi = c.diff-q*math.Sqrt(1.75), c.diff+q*math.Sqrt(1.75)
			}
			near("lo", got.Lo, c.lo)
			near("hi", got.Hi, c.hi)
		})
	}
}

func TestVerdictRule(t *testing.T) {
	lower := ClaimFromPaper(30, 28)      // the paper: 2 points lower with EraseReLU, margin 1
	higher := ClaimFromPaper(32.8, 35.1) // ER*: higher
	comparable := ClaimFromPaper(3.69, 3.69)
	nan := math.NaN()
	for _, c := range []struct {
		lo, hi float64
		claim  Claim
		want   string
	}{
		{nan, nan, lower, "inconclusive (n too small)"},
		{-3, -0.5, lower, "reproduced"},
		{0.2, 1, lower, "not reproduced (opposite sign)"},
		{-0.9, 0.9, lower, "not reproduced (effect < half the paper's)"},
		{-1.1, 0.5, lower, "inconclusive (CI spans 0)"},
		{-3, 0.1, LowerError, "inconclusive (CI spans 0)"},
		{-0.01, 0.01, LowerError, "inconclusive (CI spans 0)"}, // no paper number: no margin
		{0.5, 2, higher, "reproduced"},
		{-2, -0.5, higher, "not reproduced (opposite sign)"},
		{-0.5, 0.5, comparable, "inconclusive (CI spans 0)"},
		{0.1, 0.5, comparable, "not reproduced (paper: comparable)"},
	} {
		if got := verdict(c.lo, c.hi, c.claim); got != c.want {
			t.Errorf("verdict([%v, %v], %+v) = %q, want %q", c.lo, c.hi, c.claim, got, c.want)
		}
	}
}

// TestNothingReproducedOnOneSeed: one run per side is never a verdict,
// however large the difference.
func TestNothingReproducedOnOneSeed(t *testing.T) {
	c := Compare(seeds(50), seeds(10), LowerError)
	if !strings.HasPrefix(c.Verdict, Inconclusive) {
		t.Errorf("one seed: %s", c)
	}
	if got := c.String(); got != "-40.00 (paired, n=1): inconclusive (n too small)" {
		t.Errorf("String() = %q", got)
	}
}
