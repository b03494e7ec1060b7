package erase_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestGorgoniaResNetBothWays: the plain-Gorgonia ResNet, discovered and
// half erased, computes the same loss and parameter gradients (within
// 1e-10, float64) on the project's executor as gorgonia.Grad on Gorgonia's
// TapeMachine, and trains on the TapeMachine with Gorgonia's own solver.
func TestGorgoniaResNetBothWays(t *testing.T) {
	g := gorgoniaResNet(4)
	bindRandom(g, 5)
	_, err := graph.DiscoverModules(g)
	must(t, err)
	ours, rep, err := erase.Apply(g, erase.Options{Proportion: 0.5})
	must(t, err)
	if len(rep.Erased) != 2 || rep.ReLUsAfter != rep.ReLUsBefore-2 {
		t.Fatalf("erased %v, ReLUs %d -> %d; want 2 modules and 2 ReLUs", rep.Erased, rep.ReLUsBefore, rep.ReLUsAfter)
	}
	theirs, _, err := erase.Apply(g, erase.Options{Proportion: 0.5, CopyParams: true})
	must(t, err)

	prog, err := graph.Compile(ours, "loss")
	must(t, err)
	defer prog.Close()
	must(t, prog.Train())

	loss, _ := theirs.Output("loss")
	_, err = gorgonia.Grad(loss, theirs.ParamNodes()...)
	must(t, err)
	vm := gorgonia.NewTapeMachine(theirs.Expr(), gorgonia.BindDualValues(theirs.ParamNodes()...))
	defer vm.Close()
	must(t, vm.RunAll())
	if a, b := prog.Loss(), graph.ScalarOf(loss.Value()); math.Abs(a-b) > 1e-10*math.Max(1, math.Abs(b)) {
		t.Fatalf("loss: executor %v, TapeMachine %v", a, b)
	}
	for i, p := range ours.Params() {
		got, err := prog.Grad(p)
		must(t, err)
		wantV, err := theirs.Params()[i].Node.Grad()
		must(t, err)
		want := wantV.Data().([]float64)
		for j, v := range got.Data().([]float64) {
			if d := math.Abs(v - want[j]); d > 1e-10*math.Max(1, math.Abs(want[j])) {
				t.Fatalf("d loss / d %s[%d]: executor %v, gorgonia.Grad %v", p.Name, j, v, want[j])
			}
		}
	}

	// Gorgonia's own training loop on the erased graph.
	solver := gorgonia.NewVanillaSolver(gorgonia.WithLearnRate(0.02))
	first := graph.ScalarOf(loss.Value())
	for step := 0; step < 10; step++ {
		vm.Reset()
		must(t, vm.RunAll())
		must(t, solver.Step(gorgonia.NodesToValueGrads(theirs.ParamNodes())))
	}
	vm.Reset()
	must(t, vm.RunAll())
	if last := graph.ScalarOf(loss.Value()); !(last < first/2) {
		t.Fatalf("TapeMachine training: loss %v -> %v, want it halved", first, last)
	}
}

// fourLayers is the residual MLP of plain Gorgonia calls:
// h = Rectify(h + h·W_i), four times, optionally marked as modules.
func fourLayers(t *testing.T, mark bool) *graph.Graph {
	t.Helper()
	eg := gorgonia.NewGraph()
	x := gorgonia.NewMatrix(eg, tensor.Float64, gorgonia.WithShape(4, 8), gorgonia.WithName("x"),
		gorgonia.WithValue(tensor.New(tensor.WithShape(4, 8), tensor.WithBacking(sines(32, 0)))))
	g := graph.Wrap(eg, tensor.Float64, 1)
	g.SetInput("x", x)
	h := x
	for i := 1; i <= 4; i++ {
		w := gorgonia.NewMatrix(eg, tensor.Float64, gorgonia.WithShape(8, 8), gorgonia.WithName(fmt.Sprintf("w%d", i)),
			gorgonia.WithValue(tensor.New(tensor.WithShape(8, 8), tensor.WithBacking(sines(64, float64(i))))))
		_, err := g.AddParam(w, false)
		must(t, err)
		in := h
		h = mustNode(gorgonia.Rectify(mustNode(gorgonia.Add(in, mustNode(gorgonia.Mul(in, w))))))
		if mark {
			must(t, g.MarkModule(fmt.Sprintf("layer%d", i), graph.Residual, h, in))
		}
	}
	g.SetOutput("loss", mustNode(gorgonia.Mean(mustNode(gorgonia.Square(h)))))
	return g
}

func sines(n int, phase float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = 0.3 * math.Sin(float64(i)+phase)
	}
	return v
}

// TestGorgoniaRectifyModules: the four-layer gorgonia.Rectify network
// erases modules 1 and 3 when marked by hand, the same nodes through
// discovery without marks, and both erased graphs train.
func TestGorgoniaRectifyModules(t *testing.T) {
	type result struct {
		erased []*gorgonia.Node // outputs of the erased modules in the source
		loss   []float64
	}
	run := func(g *graph.Graph) result {
		h, rep, err := erase.Apply(g, erase.Options{Proportion: 0.5})
		must(t, err)
		if rep.ReLUsBefore != 4 || rep.ReLUsAfter != 2 {
			t.Fatalf("ReLUs %d -> %d, want 4 -> 2", rep.ReLUsBefore, rep.ReLUsAfter)
		}
		var r result
		for _, name := range rep.Erased {
			m, _ := g.Module(name)
			r.erased = append(r.erased, m.Output)
		}
		p, err := graph.Compile(h, "loss")
		must(t, err)
		defer p.Close()
		for step := 0; step < 30; step++ {
			must(t, p.Train())
			r.loss = append(r.loss, p.Loss())
			for _, prm := range h.Params() {
				grad, err := p.Grad(prm)
				must(t, err)
				w := prm.Node.Value().Data().([]float64)
				for i, d := range grad.Data().([]float64) {
					w[i] -= 0.1 * d
				}
			}
		}
		if !(r.loss[len(r.loss)-1] < r.loss[0]) {
			t.Fatalf("loss %v -> %v: no training", r.loss[0], r.loss[len(r.loss)-1])
		}
		return r
	}
	marked := fourLayers(t, true)
	a := run(marked)
	if m1, _ := marked.Module("layer1"); a.erased[0] != m1.Output {
		t.Fatalf("marked: erased %v, want layer1 and layer3", a.erased)
	}
	if m3, _ := marked.Module("layer3"); a.erased[1] != m3.Output {
		t.Fatalf("marked: erased %v, want layer1 and layer3", a.erased)
	}
	// The same network, built again without marks.
	plain := fourLayers(t, false)
	found, err := graph.DiscoverModules(plain)
	must(t, err)
	if len(found) != 4 {
		t.Fatalf("discovered %d modules, want 4", len(found))
	}
	b := run(plain)
	for i := range b.erased {
		if b.erased[i] != found[2*i].Output {
			t.Fatalf("discovered: erased module outputs %v, want modules 1 and 3", b.erased)
		}
		// The two graphs are built alike, so their nodes have equal IDs.
		if a.erased[i].ID() != b.erased[i].ID() {
			t.Fatalf("erased node %d: marked %v, discovered %v", i, a.erased[i], b.erased[i])
		}
	}
	for i := range a.loss {
		if a.loss[i] != b.loss[i] {
			t.Fatalf("step %d: loss %v marked, %v discovered", i, a.loss[i], b.loss[i])
		}
	}
}

// TestUnsupportedActivationNamed: a module ending in an activation the
// pass cannot erase fails with the node and the module named.
func TestUnsupportedActivationNamed(t *testing.T) {
	for _, c := range []struct {
		name string
		act  func(*gorgonia.Node) (*gorgonia.Node, error)
	}{
		{"gorgonia.LeakyRelu", func(n *gorgonia.Node) (*gorgonia.Node, error) { return gorgonia.LeakyRelu(n, 0.1) }},
		{"gorgonia.Sigmoid", gorgonia.Sigmoid},
		{"gorgonia.Tanh", gorgonia.Tanh},
	} {
		eg := gorgonia.NewGraph()
		g := graph.Wrap(eg, tensor.Float64, 1)
		x := gorgonia.NewMatrix(eg, tensor.Float64, gorgonia.WithShape(4, 8), gorgonia.WithName("x"))
		g.SetInput("x", x)
		w := gorgonia.NewMatrix(eg, tensor.Float64, gorgonia.WithShape(8, 8), gorgonia.WithName("w"))
		_, err := g.AddParam(w, false)
		must(t, err)
		h := mustNode(c.act(mustNode(gorgonia.Add(x, mustNode(gorgonia.Mul(x, w))))))
		g.SetOutput("loss", mustNode(gorgonia.Mean(h)))
		found, err := graph.DiscoverModules(g)
		must(t, err)
		if len(found) != 1 || found[0].Output != h {
			t.Fatalf("%s: discovered %d modules, want one ending at the activation", c.name, len(found))
		}
		_, _, err = erase.Apply(g, erase.Options{Proportion: 1})
		if err == nil || !strings.Contains(err.Error(), "residual1") || !strings.Contains(err.Error(), fmt.Sprintf("%s node %q", c.name, h.Name())) {
			t.Fatalf("%s: error %v, want it to name module residual1 and the %s node", c.name, err, c.name)
		}
	}
}

// TestRectifyErasedWhole: erasing a gorgonia.Rectify leaves nothing of its
// pattern, and a PReLU can take its place.
func TestRectifyErasedWhole(t *testing.T) {
	for _, repl := range []erase.Replacement{erase.Identity, erase.PReLU} {
		g := fourLayers(t, false)
		_, err := graph.DiscoverModules(g)
		must(t, err)
		h, rep, err := erase.Apply(g, erase.Options{Proportion: 1, Replacement: repl})
		must(t, err)
		prelus := 0
		for _, n := range h.Expr().AllNodes() {
			if n.Op() == nil {
				continue
			}
			if n.Op().String() == ">= true" || graph.IsReLU(n) {
				t.Fatalf("%v: node %v of a Rectify is left", repl, n)
			}
			if ops.IsPReLU(n) {
				prelus++
			}
		}
		want := 0
		if repl == erase.PReLU {
			want = 4
		}
		if prelus != want || rep.ReLUsAfter != 0 || rep.ParamsAfter != rep.ParamsBefore+8*want {
			t.Fatalf("%v: %d PReLUs, ReLUs %d -> %d, params %d -> %d; want %d PReLUs of 8 slopes", repl, prelus,
				rep.ReLUsBefore, rep.ReLUsAfter, rep.ParamsBefore, rep.ParamsAfter, want)
		}
		p, err := graph.Compile(h, "loss")
		must(t, err)
		must(t, p.Train())
		p.Close()
	}
}
