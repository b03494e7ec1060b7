package cuda

import (
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
	s, err := Lower(p, benchSGD, FP32)
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
		if d := RelDiff(r.Buf(id), v); d > 1e-4 && shown < 8 {
			shown++
			t.Logf("node %v (%v) shape %v: relative difference %.3g", n.ID(), n.Op(), n.Shape(), d)
		}
	}
}
