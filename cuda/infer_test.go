package cuda

import (
	"math"
	"slices"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/train"
)

// lowerBoth lowers and plans the training step of p and its inference step.
func lowerBoth(t testing.TB, p *graph.Program) (*Step, *Step) {
	t.Helper()
	s, err := Lower(p, benchSGD, FP32)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Plan(); err != nil {
		t.Fatal(err)
	}
	inf, err := LowerInference(p, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := inf.Plan(); err != nil {
		t.Fatal(err)
	}
	return s, inf
}

// TestInferenceMatchesCPU trains one step (so the running statistics are
// not the initial ones), then runs the inference step in the training
// step's arena and compares the loss, the logits and the counts with
// graph.Program.Infer, on a full batch and on one whose last rows are
// unlabelled. The inference step must leave every persistent buffer of the
// training step but the batch and the metrics as it found them.
func TestInferenceMatchesCPU(t *testing.T) {
	arc := func(cfg arch.Config, eraseAll bool, repl erase.Replacement) func(t *testing.T) (*graph.Graph, *graph.Program, []float32, []int) {
		return func(t *testing.T) (*graph.Graph, *graph.Program, []float32, []int) {
			return buildWith(t, cfg, eraseAll, repl)
		}
	}
	for _, tc := range []struct {
		name  string
		build func(t *testing.T) (*graph.Graph, *graph.Program, []float32, []int)
	}{
		{"resnet-20", arc(arch.Config{Arch: "resnet-20", Batch: 4}, false, 0)},
		{"resnet-20-prelu", arc(arch.Config{Arch: "resnet-20", Batch: 4}, true, erase.PReLU)},
		{"inception-v2-3", arc(arch.Config{Arch: "inception-v2-3", Batch: 2}, false, 0)},
		// dropout (identity in inference), batch norm on rows
		{"mlp-12", arc(arch.Config{Arch: "mlp-12", Batch: 8}, false, 0)},
		// layer norm and dropout
		{"mlp-layernorm", func(t *testing.T) (*graph.Graph, *graph.Program, []float32, []int) { return lnMLP(t, 16) }},
		// branches scaled by their survival probability in inference
		{"resnet-20-stochastic-depth", arc(arch.Config{Arch: "resnet-20", Batch: 4, StochasticDepth: true}, false, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() && tc.name != "resnet-20" {
				t.Skip("short")
			}
			g, p, xs, ys := tc.build(t)
			s, inf := lowerBoth(t, p)
			t.Logf("inference: %s", inf.Describe())
			r := NewRef(s)
			upload(t, g, s, r, xs, ys)
			if s.RNG >= 0 {
				st, err := s.RNGState()
				if err != nil {
					t.Fatal(err)
				}
				copy(r.Buf(s.RNG), st)
			}
			if err := p.Train(); err != nil {
				t.Fatal(err)
			}
			if err := r.Run(0, s.OptStart); err != nil {
				t.Fatal(err)
			}
			scorer := lossOp(t, g)
			for _, labelled := range []int{len(ys), len(ys) - 1} {
				yl := slices.Clone(ys)
				for i := labelled; i < len(yl); i++ {
					yl[i] = -1
				}
				yn, _ := g.Input("y")
				copy(yn.Value().Data().([]int), yl)
				r.SetInts(s.Y, yl)
				before := persistent(s, r)
				if err := p.Infer(); err != nil {
					t.Fatal(err)
				}
				ri := &Ref{S: inf, Arena: r.Arena}
				if err := ri.Run(0, len(inf.Instrs)); err != nil {
					t.Fatal(err)
				}
				if d := math.Abs(float64(ri.Buf(inf.Loss)[0])-p.Loss()) / math.Abs(p.Loss()); d > 1e-4 {
					t.Errorf("%d labelled: loss: ref %v, cpu %v", labelled, ri.Buf(inf.Loss)[0], p.Loss())
				}
				logits, _ := p.Output("logits")
				if d := RelDiff(ri.Buf(inf.Logits), logits.Float32s()); d > 1e-4 {
					t.Errorf("%d labelled: logits relative difference %.3g", labelled, d)
				}
				m := r.Buf(s.Metrics) // the inference step's metrics are the training step's buffer
				if float64(m[MetricLoss]) != float64(ri.Buf(inf.Loss)[0]) || int(m[MetricCount]) != scorer.Count() ||
					int(m[MetricTop1]) != scorer.Correct(1) || int(m[MetricTop5]) != scorer.Correct(5) {
					t.Errorf("%d labelled: metrics %v, cpu count %d top-1 %d top-5 %d", labelled, m, scorer.Count(), scorer.Correct(1), scorer.Correct(5))
				}
				for name, v := range persistent(s, r) {
					if !slices.Equal(v, before[name]) {
						t.Errorf("the inference step changed %s", name)
					}
				}
			}
			checkLayout(t, inf)
		})
	}
}

func lossOp(t *testing.T, g *graph.Graph) train.Scorer {
	t.Helper()
	ln, _ := g.Output("loss")
	sc, ok := ln.Op().(train.Scorer)
	if !ok {
		t.Fatalf("loss op %T is not a Scorer", ln.Op())
	}
	return sc
}

// persistent copies every persistent buffer of s but the batch and the metrics.
func persistent(s *Step, r *Ref) map[string][]float32 {
	out := map[string][]float32{}
	for id, b := range s.Bufs {
		if b.Kind.Persistent() && b.Kind != Input && b.Kind != Metrics {
			out[b.Name] = slices.Clone(r.Buf(id))
		}
	}
	return out
}

// checkLayout checks an inference step's plan: its persistent buffers are
// its base's, its transient buffers lie past every persistent buffer of the
// base and inside the arena, and no two of them live at once overlap.
func checkLayout(t *testing.T, s *Step) {
	t.Helper()
	var end int64
	for _, b := range s.Base.Bufs {
		if b.Kind.Persistent() {
			end = max(end, b.Offset+b.Bytes())
		}
	}
	if s.ArenaBytes != s.Base.ArenaBytes {
		t.Errorf("arena %d bytes, base's %d", s.ArenaBytes, s.Base.ArenaBytes)
	}
	for i, a := range s.Bufs {
		if a.Kind.Persistent() {
			if ob := s.Base.Bufs[s.Shared[i]]; ob.Offset != a.Offset || ob.Name != a.Name {
				t.Errorf("%s at %d, its base buffer %s at %d", a.Name, a.Offset, ob.Name, ob.Offset)
			}
			continue
		}
		if a.Offset < 0 {
			continue
		}
		if a.Offset < end || a.Offset+a.Bytes() > s.ArenaBytes || a.Offset%Alignment != 0 {
			t.Errorf("%s at [%d, %d): outside the transient region [%d, %d) or unaligned", a.Name, a.Offset, a.Offset+a.Bytes(), end, s.ArenaBytes)
		}
		for _, b := range s.Bufs[i+1:] {
			if b.Kind.Persistent() || b.Offset < 0 {
				continue
			}
			if a.First <= b.Last && b.First <= a.Last && a.Offset < b.Offset+b.Bytes() && b.Offset < a.Offset+a.Bytes() {
				t.Errorf("%s [%d,%d] and %s [%d,%d] overlap in memory", a.Name, a.First, a.Last, b.Name, b.First, b.Last)
			}
		}
	}
}

// TestLowerInferenceNeedsAPlannedBase: the inference step is lowered onto a
// planned training step only.
func TestLowerInferenceNeedsAPlannedBase(t *testing.T) {
	_, p, _, _ := build(t, "resnet-20", 2, false)
	if _, err := LowerInference(p, nil); err == nil {
		t.Error("no base accepted")
	}
	s, err := Lower(p, benchSGD, FP32)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LowerInference(p, s); err == nil {
		t.Error("an unplanned base accepted")
	}
}
