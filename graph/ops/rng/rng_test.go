package rng

import (
	"math/rand/v2"
	"testing"
)

// TestSurvivalThreshold: m/2^53 < s exactly when m < ceil(s*2^53), at
// the boundary too, so the integer test the device runs is the float test.
func TestSurvivalThreshold(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for k := 0; k < 10000; k++ {
		s := r.Float64()
		if k%3 == 0 {
			s = float64(r.Uint64N(1<<20)) / (1 << 20) // dyadic: the threshold is s*2^53 itself
		}
		thr := SurvivalThreshold(s)
		for _, m := range []uint64{thr - 1, thr, thr + 1, r.Uint64N(1 << 53)} {
			if m >= 1<<53 {
				continue
			}
			if float, integer := float64(m)/(1<<53) < s, Survives(m<<11, thr); float != integer {
				t.Fatalf("survival %v, m %d: float test %v, integer test %v", s, m, float, integer)
			}
		}
	}
	if SurvivalThreshold(1) != 1<<53 {
		t.Error("survival 1 must keep every draw")
	}
}

// TestDropKeepsHalves: element 2j reads the low and 2j+1 the high half of
// one 64-bit draw, and the threshold keeps about 1-p of them.
func TestDropKeepsHalves(t *testing.T) {
	base := Base(7, 3)
	h := Pair(base, 5)
	if DropKeeps(base, 10, uint32(h)) != true || DropKeeps(base, 10, uint32(h)+1) != false {
		t.Error("element 10 does not read the low half of draw 5")
	}
	if DropKeeps(base, 11, uint32(h>>32)) != true || DropKeeps(base, 11, uint32(h>>32)+1) != false {
		t.Error("element 11 does not read the high half of draw 5")
	}
	const n = 100000
	thr := DropThreshold(0.25)
	kept := 0
	for i := 0; i < n; i++ {
		if DropKeeps(base, i, thr) {
			kept++
		}
	}
	if f := float64(kept) / n; f < 0.74 || f > 0.76 { // 0.75 ± 5.8 standard deviations
		t.Errorf("kept %v of the elements at p=0.25", f)
	}
	if thr := DropThreshold(0); thr != 0 {
		t.Errorf("p=0 has threshold %d: some draws would be dropped", thr)
	}
}
