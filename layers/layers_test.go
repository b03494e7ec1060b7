package layers_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"github.com/eraserelu/eraserelu/layers"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func newGraph() (*graph.Graph, *gorgonia.Node) {
	g := graph.New(tensor.Float64, 7)
	return g, g.NewInput("x", tensor.Float64, 2, 4, 8, 8)
}

// params maps parameter names to shapes.
func params(g *graph.Graph) map[string]tensor.Shape {
	out := map[string]tensor.Shape{}
	for _, p := range g.Params() {
		out[p.Name] = p.Node.Shape()
	}
	return out
}

func TestConvShapesAndOptions(t *testing.T) {
	for _, tc := range []struct {
		name             string
		filters, kernel  int
		opts             []layers.Option
		weight, out      tensor.Shape
		bias             bool
		wantErrSubstring string
	}{
		{name: "same 3x3", filters: 6, kernel: 3, weight: tensor.Shape{6, 4, 3, 3}, out: tensor.Shape{2, 6, 8, 8}},
		{name: "stride 2", filters: 6, kernel: 3, opts: []layers.Option{layers.Stride(2)}, weight: tensor.Shape{6, 4, 3, 3}, out: tensor.Shape{2, 6, 4, 4}},
		{name: "1x1 stride 2", filters: 6, kernel: 1, opts: []layers.Option{layers.Stride(2)}, weight: tensor.Shape{6, 4, 1, 1}, out: tensor.Shape{2, 6, 4, 4}},
		{name: "7x7/2 pad 3", filters: 8, kernel: 7, opts: []layers.Option{layers.Stride(2)}, weight: tensor.Shape{8, 4, 7, 7}, out: tensor.Shape{2, 8, 4, 4}},
		{name: "valid", filters: 6, kernel: 3, opts: []layers.Option{layers.Pad(0)}, weight: tensor.Shape{6, 4, 3, 3}, out: tensor.Shape{2, 6, 6, 6}},
		{name: "groups", filters: 8, kernel: 3, opts: []layers.Option{layers.Groups(2)}, weight: tensor.Shape{8, 2, 3, 3}, out: tensor.Shape{2, 8, 8, 8}},
		{name: "bias", filters: 6, kernel: 3, opts: []layers.Option{layers.Bias(true)}, weight: tensor.Shape{6, 4, 3, 3}, out: tensor.Shape{2, 6, 8, 8}, bias: true},
		{name: "bad groups", filters: 6, kernel: 3, opts: []layers.Option{layers.Groups(3)}, wantErrSubstring: "groups"},
		{name: "foreign option", filters: 6, kernel: 3, opts: []layers.Option{layers.Momentum(0.2)}, wantErrSubstring: "option Momentum does not apply"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, x := newGraph()
			y, err := layers.Conv(g, x, tc.filters, tc.kernel, append(tc.opts, layers.Name("c"))...)
			if tc.wantErrSubstring != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrSubstring) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.wantErrSubstring)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ps := params(g)
			if !ps["c/weight"].Eq(tc.weight) || !y.Shape().Eq(tc.out) {
				t.Errorf("weight %v, output %v; want %v, %v", ps["c/weight"], y.Shape(), tc.weight, tc.out)
			}
			if _, ok := ps["c/bias"]; ok != tc.bias || len(ps) != map[bool]int{false: 1, true: 2}[tc.bias] {
				t.Errorf("params %v, bias wanted: %v", ps, tc.bias)
			}
		})
	}
}

func TestScopedAndDefaultNames(t *testing.T) {
	g, x := newGraph()
	err := g.Within("stage2", func() error {
		return g.Within("block3", func() error {
			h, err := layers.ConvBNReLU(g, x, 4, 3, layers.Name("conv1"))
			if err != nil {
				return err
			}
			if h, err = layers.ConvBN(g, h, 4, 3, layers.Name("shortcut")); err != nil {
				return err
			}
			// Unnamed layers take their kind, made unique.
			if h, err = layers.Conv(g, h, 4, 3); err != nil {
				return err
			}
			_, err = layers.Conv(g, h, 4, 3)
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range g.Params() {
		names = append(names, p.Name)
	}
	want := []string{
		"stage2/block3/conv1/weight", "stage2/block3/bn1/gamma", "stage2/block3/bn1/beta",
		"stage2/block3/shortcut/weight", "stage2/block3/shortcut_bn/gamma", "stage2/block3/shortcut_bn/beta",
		"stage2/block3/conv/weight", "stage2/block3/conv_1/weight",
	}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("parameter names\n%v\nwant\n%v", names, want)
	}
	var bufs []string
	for _, b := range g.Buffers() {
		bufs = append(bufs, b.Name)
	}
	wantBufs := "stage2/block3/bn1/running_mean stage2/block3/bn1/running_var stage2/block3/shortcut_bn/running_mean stage2/block3/shortcut_bn/running_var"
	if strings.Join(bufs, " ") != wantBufs {
		t.Errorf("buffer names %v, want %v", bufs, wantBufs)
	}
}

func TestBatchNormInitialState(t *testing.T) {
	g, x := newGraph()
	y, err := layers.BatchNorm(g, x, layers.NoDecay(true), layers.Eps(1e-3), layers.Momentum(0.01))
	if err != nil {
		t.Fatal(err)
	}
	if !y.Shape().Eq(x.Shape()) {
		t.Errorf("output shape %v", y.Shape())
	}
	want := map[string]float64{"bn/gamma": 1, "bn/beta": 0, "bn/running_mean": 0, "bn/running_var": 1}
	for _, p := range g.Params() {
		if !p.NoDecay {
			t.Errorf("%s: NoDecay not set", p.Name)
		}
		checkFill(t, p.Name, p.Node.Value().Data().([]float64), want[p.Name])
	}
	for _, b := range g.Buffers() {
		checkFill(t, b.Name, b.Value.Data().([]float64), want[b.Name])
	}
	if len(g.Params()) != 2 || len(g.Buffers()) != 2 {
		t.Errorf("%d params, %d buffers, want 2 and 2", len(g.Params()), len(g.Buffers()))
	}
	// Decay on by default.
	g2, x2 := newGraph()
	if _, err := layers.BatchNorm(g2, x2); err != nil {
		t.Fatal(err)
	}
	if g2.Params()[0].NoDecay {
		t.Error("batch norm defaults to NoDecay; want decay on every parameter")
	}
}

func checkFill(t *testing.T, name string, d []float64, v float64) {
	t.Helper()
	if len(d) != 4 {
		t.Errorf("%s has %d entries, want 4", name, len(d))
	}
	for _, x := range d {
		if x != v {
			t.Errorf("%s = %v, want all %v", name, d, v)
			return
		}
	}
}

func TestDenseLayerNormPReLUDropout(t *testing.T) {
	g, x := newGraph()
	h, err := layers.Dense(g, x, 5) // flattens (2, 4, 8, 8)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Shape().Eq(tensor.Shape{2, 5}) {
		t.Errorf("dense output %v", h.Shape())
	}
	if h, err = layers.Dense(g, h, 3, layers.Bias(false), layers.Init(graph.HeNormal())); err != nil {
		t.Fatal(err)
	}
	if h, err = layers.LayerNorm(g, h); err != nil {
		t.Fatal(err)
	}
	p, err := layers.PReLU(g, h)
	if err != nil {
		t.Fatal(err)
	}
	d, err := layers.Dropout(g, p, 0)
	if err != nil || d != p {
		t.Errorf("Dropout(0) = %v, %v; want its input", d, err)
	}
	if d, err = layers.Dropout(g, p, 0.5); err != nil || d == p || !d.Shape().Eq(p.Shape()) {
		t.Errorf("Dropout(0.5) = %v, %v", d, err)
	}
	if _, err := layers.Dropout(g, p, 1); err == nil {
		t.Error("Dropout(1) accepted")
	}
	if _, err := layers.Dense(g, h, 3, layers.Stride(2)); err == nil || !strings.Contains(err.Error(), "Stride") {
		t.Errorf("Dense with Stride: %v", err)
	}
	want := map[string]string{
		"fc/weight": "(5, 256)", "fc/bias": "(5)", "fc_1/weight": "(3, 5)",
		"ln/gamma": "(3)", "ln/beta": "(3)", "prelu/alpha": "(3)",
	}
	got := params(g)
	if len(got) != len(want) {
		t.Errorf("params %v, want %v", got, want)
	}
	for n, s := range want {
		if fmt.Sprint(got[n]) != s {
			t.Errorf("%s: shape %v, want %s", n, got[n], s)
		}
	}
	for _, prm := range g.Params() {
		if prm.Name == "prelu/alpha" {
			if v := prm.Node.Value().Data().([]float64); v[0] != 0.25 {
				t.Errorf("alpha starts at %v, want 0.25", v)
			}
		}
	}
}

func TestHeNormalFan(t *testing.T) {
	g := graph.New(tensor.Float64, 3)
	n := g.NewParam("b", []int{20000}, layers.HeNormalFan(50), false)
	var s2 float64
	d := n.Value().Data().([]float64)
	for _, v := range d {
		s2 += v * v
	}
	if std := math.Sqrt(s2 / float64(len(d))); math.Abs(std-0.2) > 0.01 {
		t.Errorf("std %g, want 0.2 = sqrt(2/50)", std)
	}
}

// A small conv net trains: forward and backward run, every parameter gets a
// gradient of its own shape.
func TestSmallNetForwardBackward(t *testing.T) {
	g, x := newGraph()
	y := g.NewInput("y", tensor.Int, 2)
	h, err := layers.ConvBNReLU(g, x, 4, 3, layers.Name("conv1"), layers.Stride(2))
	if err == nil {
		h, err = layers.BNReLU(g, h, layers.Name("bn2"))
	}
	if err == nil {
		h, err = ops.GlobalAvgPool(h)
	}
	if err == nil {
		h, err = layers.Dense(g, h, 3)
	}
	if err != nil {
		t.Fatal(err)
	}
	loss, _, err := ops.SoftmaxCrossEntropy(h, y)
	if err != nil {
		t.Fatal(err)
	}
	g.SetOutput("loss", loss)
	xv := tensor.New(tensor.WithShape(2, 4, 8, 8), tensor.WithBacking(make([]float64, 2*4*8*8)))
	for i, d := 0, xv.Data().([]float64); i < len(d); i++ {
		d[i] = math.Sin(float64(i))
	}
	if err := gorgonia.Let(x, xv); err != nil {
		t.Fatal(err)
	}
	if err := gorgonia.Let(y, tensor.New(tensor.WithBacking([]int{0, 2}))); err != nil {
		t.Fatal(err)
	}
	p, err := graph.Compile(g, "loss")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Train(); err != nil {
		t.Fatal(err)
	}
	if l := p.Loss(); math.IsNaN(l) || math.IsInf(l, 0) {
		t.Errorf("loss %v", l)
	}
	for _, prm := range g.Params() {
		gr, err := p.Grad(prm)
		if err != nil {
			t.Fatal(err)
		}
		if !gr.Shape().Eq(prm.Node.Shape()) {
			t.Errorf("%s: gradient shape %v, want %v", prm.Name, gr.Shape(), prm.Node.Shape())
		}
	}
}
