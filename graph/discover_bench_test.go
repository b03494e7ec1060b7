package graph_test

import (
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
)

// BenchmarkDiscoverErase is discovery and the erase pass (half the
// modules) on ResNet-1202 without annotations; the goal is under 200 ms.
// Building the network is outside the timing.
func BenchmarkDiscoverErase(b *testing.B) {
	g, err := arch.Build(arch.Config{Arch: "resnet-1202"})
	if err != nil {
		b.Fatal(err)
	}
	want := len(g.Leaves())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := stripped(b, g)
		b.StartTimer()
		ms, err := graph.DiscoverModules(s)
		if err != nil {
			b.Fatal(err)
		}
		if len(ms) != want {
			b.Fatalf("discovered %d modules, want %d", len(ms), want)
		}
		if _, _, err := erase.Apply(s, erase.Options{Proportion: 0.5}); err != nil {
			b.Fatal(err)
		}
	}
}
