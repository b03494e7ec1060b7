package cuda

import (
	"strings"
	"testing"
)

// TestParsePrecision: fp32 and tf32 parse; bf16 is refused as not
// implemented yet, anything else as unknown, each naming the valid values.
func TestParsePrecision(t *testing.T) {
	for _, s := range []string{"fp32", "tf32"} {
		if p, err := ParsePrecision(s); err != nil || string(p) != s {
			t.Errorf("%s: %q, %v", s, p, err)
		}
	}
	for s, want := range map[string]string{
		"bf16": "bf16 mixed precision is not implemented yet",
		"fp16": `unknown precision "fp16"`,
		"":     `unknown precision ""`,
		"FP32": `unknown precision "FP32"`,
	} {
		_, err := ParsePrecision(s)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "fp32, tf32") {
			t.Errorf("%q: %v, want %q", s, err, want)
		}
	}
}
