package cuda

import (
	"strings"
	"testing"
)

// TestParsePrecision: fp32, tf32 and bf16 parse; anything else is refused
// as unknown, naming the valid values.
func TestParsePrecision(t *testing.T) {
	for _, s := range []string{"fp32", "tf32", "bf16"} {
		if p, err := ParsePrecision(s); err != nil || string(p) != s {
			t.Errorf("%s: %q, %v", s, p, err)
		}
	}
	for _, s := range []string{"fp16", "", "FP32"} {
		_, err := ParsePrecision(s)
		if err == nil || !strings.Contains(err.Error(), `unknown precision "`+s+`"`) || !strings.Contains(err.Error(), "fp32, tf32, bf16") {
			t.Errorf("%q: %v", s, err)
		}
	}
}
