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
