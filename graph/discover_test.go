package graph_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"gorgonia.org/gorgonia"
)

// stripped wraps g's expression graph again with its parameters, inputs
// and outputs but none of its modules: what a user of plain Gorgonia has.
func stripped(t testing.TB, g *graph.Graph) *graph.Graph {
	t.Helper()
	s := graph.Wrap(g.Expr(), g.Dtype(), 1)
	for _, p := range g.Params() {
		if _, err := s.AddParam(p.Node, p.NoDecay); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range g.InputNames() {
		n, _ := g.Input(name)
		s.SetInput(name, n)
	}
	for _, name := range g.OutputNames() {
		n, _ := g.Output(name)
		s.SetOutput(name, n)
	}
	return s
}

// discoveryCases are every architecture family of arch, in small sizes,
// with the variants that change a module's shape.
var discoveryCases = []arch.Config{
	{Arch: "fig3-vgg-10"},
	{Arch: "fig3-res-10"},
	{Arch: "fig3-res-10", StochasticDepth: true},
	{Arch: "mlp-4"},
	{Arch: "mlp-4", Dropout: -1},
	{Arch: "scalar-5"},
	{Arch: "resnet-20"},
	{Arch: "resnet-20", StochasticDepth: true},
	{Arch: "resnet-29-bottleneck"},
	{Arch: "preact-resnet-20"},
	{Arch: "preact-resnet-20", AfterActivation: true},
	{Arch: "preact-resnet-29-bottleneck"},
	{Arch: "preact-resnet-29-bottleneck", AfterActivation: true},
	{Arch: "wrn-16-1-d"},
	{Arch: "wrn-10-2"},
	{Arch: "wrn-10-2", AfterActivation: true},
	{Arch: "resnext-29-2x4d"},
	{Arch: "inception-v2-6"},
	{Arch: "imagenet-resnet-18", InputShape: [3]int{3, 32, 32}, Classes: 10},
	{Arch: "imagenet-resnext-50-2x4d", InputShape: [3]int{3, 32, 32}, Classes: 10},
	{Arch: "imagenet-preact-resnet-18", InputShape: [3]int{3, 32, 32}, Classes: 10},
	{Arch: "imagenet-preact-resnet-50", InputShape: [3]int{3, 32, 32}, Classes: 10},
	{Arch: "imagenet-preact-resnet-50", InputShape: [3]int{3, 32, 32}, Classes: 10, AfterActivation: true},
}

// TestDiscoverMatchesAnnotations: on every family with its annotations
// stripped, discovery finds the hand-annotated modules: the same count,
// order, outputs, kinds, members and trailing ReLUs.
func TestDiscoverMatchesAnnotations(t *testing.T) {
	for _, cfg := range discoveryCases {
		name := fmt.Sprintf("%s/after=%v/sd=%v/drop=%v", cfg.Arch, cfg.AfterActivation, cfg.StochasticDepth, cfg.Dropout)
		t.Run(name, func(t *testing.T) {
			g, err := arch.Build(cfg)
			if err != nil {
				t.Fatal(err)
			}
			sameModules(t, g)
		})
	}
}

// sameModules discovers the modules of g with its annotations stripped
// and fails unless they are g's leaf modules: the same count and order,
// outputs, kinds, members, and trailing and first ReLUs.
func sameModules(t *testing.T, g *graph.Graph) {
	t.Helper()
	want := g.Leaves()
	got, err := graph.DiscoverModules(stripped(t, g))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("discovered %d modules, annotated %d", len(got), len(want))
	}
	for i, m := range got {
		w := want[i]
		if m.Output != w.Output || m.Kind != w.Kind {
			t.Fatalf("module %d: discovered %s (%s) ending at %v, annotated %s (%s) ending at %v", i, m.Name, m.Kind, m.Output, w.Name, w.Kind, w.Output)
		}
		if !slices.Equal(m.Members, w.Members) {
			t.Fatalf("module %d (%s): members differ:\n discovered %v\n annotated  %v", i, w.Name, names(m.Members), names(w.Members))
		}
		for _, loc := range []erase.Location{erase.Last, erase.First} {
			a, errA := erase.Locate(m, loc)
			b, errB := erase.Locate(w, loc)
			if (errA == nil) != (errB == nil) || !slices.Equal(a, b) {
				t.Fatalf("module %d (%s) %v ReLU: discovered %v (%v), annotated %v (%v)", i, w.Name, loc, names(a), errA, names(b), errB)
			}
		}
	}
}

func names(ns []*gorgonia.Node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, fmt.Sprintf("%d:%v", n.ID(), n.Op()))
	}
	return out
}
