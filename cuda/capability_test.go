package cuda

import (
	"strings"
	"testing"
)

// TestCheckCapability: GPUs from Volta (7.0) on pass, older ones are refused
// with their name and capability.
func TestCheckCapability(t *testing.T) {
	for _, c := range [][2]int{{7, 0}, {7, 5}, {8, 0}, {8, 6}, {8, 9}, {9, 0}, {10, 0}, {12, 0}} {
		if err := CheckCapability("gpu", c[0], c[1]); err != nil {
			t.Errorf("%d.%d: %v", c[0], c[1], err)
		}
	}
	for _, c := range [][2]int{{6, 1}, {6, 0}, {5, 2}, {3, 5}} {
		err := CheckCapability("Tesla P100", c[0], c[1])
		if err == nil || !strings.Contains(err.Error(), "Tesla P100") || !strings.Contains(err.Error(), "need 7.0 or newer") ||
			!strings.Contains(err.Error(), "compute capability "+string(rune('0'+c[0]))+"."+string(rune('0'+c[1]))) {
			t.Errorf("%d.%d: %v", c[0], c[1], err)
		}
	}
}

// TestCheckPrecision: a bf16 step runs from compute capability 8.0 on and
// is refused on Volta and Turing naming the GPU and its capability; an
// fp16 step runs from 7.0 on (the check itself refuses 6.0, naming it); fp32
// and tf32 run anywhere the kernels do; a step lowered for one precision
// is refused by an executor opened for another (TF32 and the zero value
// are the fp32 step).
func TestCheckPrecision(t *testing.T) {
	bf16, fp32, hand := &Step{Precision: BF16}, &Step{Precision: FP32}, &Step{}
	for _, c := range [][2]int{{8, 0}, {8, 6}, {8, 9}, {9, 0}, {12, 0}} {
		if err := CheckPrecision(bf16, BF16, "gpu", c[0], c[1]); err != nil {
			t.Errorf("bf16 on %d.%d: %v", c[0], c[1], err)
		}
	}
	for _, c := range [][2]int{{7, 0}, {7, 5}} {
		err := CheckPrecision(bf16, BF16, "Tesla V100-SXM2-16GB", c[0], c[1])
		if err == nil || !strings.Contains(err.Error(), "Tesla V100-SXM2-16GB") || !strings.Contains(err.Error(), "8.0 or newer") ||
			!strings.Contains(err.Error(), "--precision bf16") {
			t.Errorf("bf16 on %d.%d: %v", c[0], c[1], err)
		}
		for _, p := range []Precision{FP32, TF32, ""} {
			if err := CheckPrecision(fp32, p, "Tesla V100", c[0], c[1]); err != nil {
				t.Errorf("%q on %d.%d: %v", p, c[0], c[1], err)
			}
		}
	}
	fp16 := &Step{Precision: FP16}
	for _, c := range [][2]int{{7, 0}, {7, 5}, {8, 0}, {9, 0}, {12, 0}} {
		if err := CheckPrecision(fp16, FP16, "gpu", c[0], c[1]); err != nil {
			t.Errorf("fp16 on %d.%d: %v", c[0], c[1], err)
		}
	}
	if err := CheckPrecision(fp16, FP16, "Tesla P100", 6, 0); err == nil || !strings.Contains(err.Error(), "Tesla P100") ||
		!strings.Contains(err.Error(), "7.0 or newer") || !strings.Contains(err.Error(), "--precision fp16") {
		t.Errorf("fp16 on 6.0: %v", err)
	}
	if err := CheckPrecision(hand, FP32, "gpu", 9, 0); err != nil {
		t.Errorf("a hand-made step: %v", err)
	}
	for _, c := range []struct {
		s *Step
		p Precision
	}{{bf16, FP32}, {bf16, TF32}, {fp32, BF16}, {hand, BF16}, {fp16, BF16}, {bf16, FP16}, {fp32, FP16}, {fp16, TF32}} {
		if err := CheckPrecision(c.s, c.p, "gpu", 9, 0); err == nil || !strings.Contains(err.Error(), "lowered for") {
			t.Errorf("step %q opened for %q: %v", c.s.Precision, c.p, err)
		}
	}
}
