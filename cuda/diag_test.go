package cuda

import (
	"math"
	"os"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/erase"
)

// TestDiagNodes (set CUDA_DIAG=1) lists the first nodes whose Ref value
// differs from the CPU's, for the ResNeXt case; a debugging aid.
func TestDiagNodes(t *testing.T) {
	if os.Getenv("CUDA_DIAG") == "" {
		t.Skip("debugging aid: set CUDA_DIAG=1")
	}
	cfg := arch.Config{Arch: "imagenet-resnext-50-32x4d", Batch: 4, InputShape: [3]int{3, 64, 64}, Classes: 10}
	g, p, xs, ys := buildWith(t, cfg, false, erase.Identity)
	s, err := Lower(p, benchSGD)
	if err != nil {
		t.Fatal(err)
	}
	s.NoShare = true
	if err := s.Plan(); err != nil {
		t.Fatal(err)
	}
	r := NewRef(s)
	upload(t, g, s, r, xs, ys)
	if err := p.Train(); err != nil {
		t.Fatal(err)
	}
	if err := r.Run(0, s.OptStart); err != nil {
		t.Fatal(err)
	}
	shown := 0
	for _, n := range g.Expr().AllNodes() {
		id, ok := s.NodeBufs[n]
		if !ok || n.Value() == nil || n.IsVar() {
			continue
		}
		v, ok := n.Value().Data().([]float32)
		if !ok {
			continue
		}
		if d := relDiff(r.Buf(id), v); d > 1e-4 && shown < 8 {
			shown++
			t.Logf("node %v (%v) shape %v: relative difference %.3g", n.ID(), n.Op(), n.Shape(), d)
		}
	}
}

// TestResNeXtConditioning shows why the ResNeXt case of TestRefMatchesCPU
// has a loose gradient tolerance: it perturbs the input by one float32 rounding step and
// measures how far the CPU path's own gradients move.
func TestResNeXtConditioning(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	cfg := arch.Config{Arch: "imagenet-resnext-50-32x4d", Batch: 4, InputShape: [3]int{3, 64, 64}, Classes: 10}
	grads := func(perturb bool) [][]float32 {
		g, p, xs, _ := buildWith(t, cfg, false, erase.Identity)
		if perturb {
			xn, _ := g.Input("x")
			d := xn.Value().Data().([]float32)
			for i := range d {
				if i%7 == 0 {
					d[i] = math.Nextafter32(d[i], float32(math.Inf(1)))
				}
			}
			_ = xs
		}
		if err := p.Train(); err != nil {
			t.Fatal(err)
		}
		var out [][]float32
		for _, prm := range g.Params() {
			gr, _ := p.Grad(prm)
			out = append(out, append([]float32(nil), gr.Float32s()...))
		}
		return out
	}
	a, b := grads(false), grads(true)
	worst := 0.0
	for i := range a {
		worst = max(worst, relDiff(a[i], b[i]))
	}
	t.Logf("CPU path, input moved by one ulp in 1/7 of its elements: worst gradient relative difference %.3g", worst)
}
