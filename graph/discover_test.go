package graph_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"github.com/eraserelu/eraserelu/layers"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
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
// and fails unless the leaves found are g's leaf modules: the same count and order,
// outputs, kinds, members, and trailing and first ReLUs.
func sameModules(t *testing.T, g *graph.Graph) {
	t.Helper()
	want := g.Leaves()
	s := stripped(t, g)
	if _, err := graph.DiscoverModules(s); err != nil {
		t.Fatal(err)
	}
	got := s.Leaves()
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

// TestDiscoverNestedResidual: a residual block inside another's branch is
// found as the outer one's child, and the leaves are the inner blocks.
func TestDiscoverNestedResidual(t *testing.T) {
	g := graph.New(tensor.Float64, 1)
	h := g.NewInput("x", tensor.Float64, 2, 6)
	y := g.NewInput("y", tensor.Int, 2)
	var inner []*gorgonia.Node
	outer, err := g.Build("outer", graph.Residual, func() (*gorgonia.Node, error) {
		r := h
		for i := 0; i < 2; i++ {
			in := r
			r = gorgonia.Must(g.Build(fmt.Sprintf("inner%d", i), graph.Residual, func() (*gorgonia.Node, error) {
				return ops.ReLU(gorgonia.Must(ops.Add(in, gorgonia.Must(layers.Dense(g, in, 6)))))
			}))
			inner = append(inner, r)
		}
		return ops.ReLU(gorgonia.Must(ops.Add(h, gorgonia.Must(layers.Dense(g, r, 6)))))
	})
	must(t, err)
	loss, _, err := ops.SoftmaxCrossEntropy(gorgonia.Must(layers.Dense(g, outer, 3)), y)
	must(t, err)
	g.SetOutput("loss", loss)
	s := stripped(t, g)
	found, err := graph.DiscoverModules(s)
	must(t, err)
	if len(found) != 3 || found[2].Output != outer {
		t.Fatalf("discovered %d modules, want the two inner blocks and the outer one last", len(found))
	}
	leaves := s.Leaves()
	if len(leaves) != 2 || leaves[0].Output != inner[0] || leaves[1].Output != inner[1] ||
		leaves[0].Parent != found[2] || leaves[1].Parent != found[2] {
		t.Fatalf("leaves %v, want the inner blocks, children of the outer one", leaves)
	}
	sameModules(t, g)
}
