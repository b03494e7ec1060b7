package cuda

import (
	"strings"
	"testing"
)

// TestParsePrecision: fp32, tf32, bf16 and fp16 parse; anything else is
// refused as unknown, naming the valid values.
func TestParsePrecision(t *testing.T) {
	for _, s := range []string{"fp32", "tf32", "bf16", "fp16"} {
		if p, err := ParsePrecision(s); err != nil || string(p) != s {
			t.Errorf("%s: %q, %v", s, p, err)
		}
	}
	for _, s := range []string{"fp8", "half", "", "FP32"} {
		_, err := ParsePrecision(s)
		if err == nil || !strings.Contains(err.Error(), `unknown precision "`+s+`"`) || !strings.Contains(err.Error(), "fp32, tf32, bf16, fp16") {
			t.Errorf("%q: %v", s, err)
		}
	}
}
