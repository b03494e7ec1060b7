package experiments

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func TestGradientCorrelation(t *testing.T) {
	smooth := make([]float64, 1000)
	noise := make([]float64, 1000)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range smooth {
		smooth[i] = math.Sin(float64(i) / 100)
		noise[i] = rng.NormFloat64()
	}
	if c := GradientCorrelation(smooth); c < 0.99 {
		t.Errorf("smooth gradient correlation %v, want ~1", c)
	}
	if c := GradientCorrelation(noise); math.Abs(c) > 0.1 {
		t.Errorf("white-noise gradient correlation %v, want ~0", c)
	}
}

func TestActivationLevels(t *testing.T) {
	// 4 points x 3 units: unit 0 always on, unit 1 never, unit 2 half the time.
	h := []float64{1, -1, 1, 2, 0, -1, 3, -2, 1, 4, -3, -1}
	lv := ActivationLevels(h, 4, 3)
	if lv[0] != 1 || lv[1] != 0 || lv[2] != 0.5 {
		t.Fatalf("levels %v", lv)
	}
	if a, n := AlwaysNever(lv); a != 1 || n != 1 {
		t.Errorf("always %d never %d", a, n)
	}
}

func TestSavePanel(t *testing.T) {
	n := 50
	p := Fig4Panel{Title: "test", X: make([]float64, n), Gradients: make([]float64, n), Levels: []float64{0, 0.5, 1, 0.25}}
	for i := range p.X {
		p.X[i] = -2 + 4*float64(i)/float64(n-1)
		p.Gradients[i] = math.Cos(p.X[i])
	}
	path := filepath.Join(t.TempDir(), "panel.png")
	if err := SavePanel(p, path); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() < 1000 {
		t.Fatalf("panel not written: %v", err)
	}
}

// TestScalarNetChunksAreExact checks that measuring the grid in chunks gives
// the numbers of a single pass (each point flows through the net alone).
func TestScalarNetChunksAreExact(t *testing.T) {
	one, err := ScalarNet(3, 0, 50, 7) // 50 points: one chunk
	if err != nil {
		t.Fatal(err)
	}
	many, err := ScalarNet(3, 0, 200, 7) // 200 points: two chunks of 100
	if err != nil {
		t.Fatal(err)
	}
	if len(many.Panel.Gradients) != 200 || len(one.Panel.Gradients) != 50 {
		t.Fatalf("gradient counts %d, %d", len(one.Panel.Gradients), len(many.Panel.Gradients))
	}
	// The 50-point grid's ends coincide with the 200-point grid's ends.
	if d := one.Panel.Gradients[0] - many.Panel.Gradients[0]; math.Abs(d) > 1e-12 {
		t.Errorf("df/dx(-2): %v in one pass, %v in chunks", one.Panel.Gradients[0], many.Panel.Gradients[0])
	}
	if d := one.Panel.Gradients[49] - many.Panel.Gradients[199]; math.Abs(d) > 1e-12 {
		t.Errorf("df/dx(2): %v in one pass, %v in chunks", one.Panel.Gradients[49], many.Panel.Gradients[199])
	}
}

func TestIncrementCorrelation(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	walk, noise, smooth := make([]float64, 2000), make([]float64, 2000), make([]float64, 2000)
	for i := range walk {
		noise[i] = rng.NormFloat64()
		smooth[i] = math.Sin(float64(i) / 200)
		if i > 0 {
			walk[i] = walk[i-1] + noise[i]
		}
	}
	for _, c := range []struct {
		name   string
		g      []float64
		lo, hi float64
	}{{"smooth", smooth, 0.95, 1}, {"random walk", walk, -0.1, 0.1}, {"white noise", noise, -0.6, -0.4}} {
		if v := IncrementCorrelation(c.g); v < c.lo || v > c.hi {
			t.Errorf("%s: increment correlation %v, want in [%v, %v]", c.name, v, c.lo, c.hi)
		}
	}
}
