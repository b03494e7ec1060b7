package arch_test

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// matchesPaper compares a count with a paper's figure, e.g. "0.27M", to
// the figure's precision: our count rounded or truncated to as many
// decimals (Xie et al. truncate: 68,155,210 is their 68.1M).
func matchesPaper(count int, paper string) bool {
	s := strings.TrimSuffix(paper, "M")
	want, err := strconv.ParseFloat(s, 64)
	if err != nil {
		panic(err)
	}
	dec := 0
	if i := strings.IndexByte(s, '.'); i >= 0 {
		dec = len(s) - i - 1
	}
	scale := math.Pow(10, float64(dec))
	got := float64(count) / 1e6 * scale
	return math.Round(got) == math.Round(want*scale) || math.Floor(got) == math.Round(want*scale)
}

// weightsOnly counts the convolution and fully-connected parameters,
// leaving out batch norm's gamma and beta (rank-1 parameters not named bias).
func weightsOnly(g *graph.Graph) int {
	n := 0
	for _, p := range g.Params() {
		if p.Node.Dims() > 1 || strings.HasSuffix(p.Name, "/bias") {
			n += p.Node.Shape().TotalSize()
		}
	}
	return n
}

// Every architecture the paper trains, built at full size with its default
// classes (CIFAR-10, MNIST, ImageNet): exact parameter count (pinned, ours),
// the original paper's figure where it reports one (matched to its
// precision), MACs per image, modules and ReLUs; logits of shape (batch,
// classes). None is run here.
func TestFullSizeCounts(t *testing.T) {
	for _, tc := range []struct {
		arch    string
		params  int
		paper   string // "" where no paper reports a count
		source  string
		macs    int64
		modules int
		relus   int
	}{
		// Section 3.2: 30 modules of one ReLU each (+ the stem's).
		// No published count; same convolutions as ResNet-32.
		{"fig3-vgg-31", 464154, "", "own count", 68862592, 30, 31},
		{"fig3-res-31", 464154, "", "own count (option-A shortcuts are parameter-free)", 68862592, 30, 31},
		// 784*1000 + 10*1000*1000 + 11*2*1000 (BN) + 1000*10 + 10.
		{"mlp-12", 10816010, "", "own count", 10794000, 11, 11},
		// 2*200 + 300*(200*200 + 200 + 2*200) + 201.
		{"scalar-300", 12180601, "", "own count", 12000400, 300, 300},
		// He et al. 2016, "Deep residual learning", Table 6 (CIFAR-10).
		{"resnet-20", 269722, "0.27M", "He et al. 2016, Table 6", 40551040, 9, 19},
		{"resnet-32", 464154, "0.46M", "He et al. 2016, Table 6", 68862592, 15, 31},
		{"resnet-44", 658586, "0.66M", "He et al. 2016, Table 6", 97174144, 21, 43},
		{"resnet-56", 853018, "0.85M", "He et al. 2016, Table 6", 125485696, 27, 55},
		{"resnet-110", 1727962, "1.7M", "He et al. 2016, Table 6", 252887680, 54, 109},
		{"resnet-1202", 19421274, "19.4M", "He et al. 2016, Table 6", 2829238912, 600, 1201},
		// He et al. 2016b, "Identity mappings", CIFAR results (Tables 2, 3).
		// Also osmr/imgclsmob ResNet-164(BN): 1,704,154 exactly.
		{"resnet-164", 1704154, "1.7M", "He et al. 2016b", 247646720, 54, 163},
		{"preact-resnet-62", 950234, "", "own count (He et al. 2016b do not train 62 layers)", 139641472, 30, 61},
		{"preact-resnet-110", 1727962, "1.7M", "He et al. 2016b", 252887680, 54, 109},
		// osmr/imgclsmob PreResNet-164(BN): 1,703,258 exactly.
		{"preact-resnet-164", 1703258, "1.7M", "He et al. 2016b, Table 3", 247646720, 54, 163},
		// 10.2M in He et al. 2016b counts the weights without batch norm
		// (10,178,490, checked below); with BN it is 10,327,706, exactly
		// osmr/imgclsmob's PreResNet-1001.
		{"preact-resnet-1001", 10327706, "", "He et al. 2016b: see TestPreAct1001PaperCount", 1490995712, 333, 1000},
		// Zagoruyko & Komodakis 2016, Table 4.
		{"wrn-40-4", 8949210, "8.9M", "Zagoruyko & Komodakis 2016, Table 4", 1298582016, 18, 37},
		{"wrn-28-10", 36479194, "36.5M", "Zagoruyko & Komodakis 2016, Table 4", 5243328768, 12, 25},
		{"wrn-28-10-d", 36479194, "36.5M", "Zagoruyko & Komodakis 2016, Table 4 (dropout adds none)", 5243328768, 12, 25},
		{"wrn-52-1", 758362, "", "own count (Table 6 of the WRN paper gives errors only)", 111592064, 24, 49},
		{"wrn-52-1-d", 758362, "", "own count", 111592064, 24, 49},
		{"wrn-52-10", 75204314, "", "own count", 10905639168, 24, 49},
		// Xie et al. 2017, Table 7; osmr/imgclsmob ResNeXt-29 (16x64d): 68,155,210 exactly.
		{"resnext-29-8x64d", 34426698, "34.4M", "Xie et al. 2017, Table 7", 5387266048, 9, 28},
		{"resnext-29-16x64d", 68155210, "68.1M", "Xie et al. 2017, Table 7", 10688866304, 9, 28},
		// Section 4.2 gives no count; our layout is in docs/architectures.md.
		{"inception-v2-30", 9268554, "", "own count", 1349197312, 30, 211},
		// torchvision's documented counts (exact) and GFLOPS (MACs: 4.09, 7.80, 11.51).
		{"imagenet-resnet-50", 25557032, "25.6M", "torchvision resnet50: 25,557,032", 4089184256, 16, 49},
		{"imagenet-resnet-101", 44549160, "44.5M", "torchvision resnet101: 44,549,160", 7801405440, 33, 100},
		{"imagenet-resnet-152", 60192808, "60.2M", "torchvision resnet152: 60,192,808", 11513626624, 50, 151},
		// TF-slim resnet_v1_200 and timm resnet200: 64,673,832 exactly.
		{"imagenet-resnet-200", 64673832, "64.7M", "TF-slim/timm resnet200: 64,673,832", 15007481856, 66, 199},
		// ResNet-200 less the shortcut BNs (2*(256+512+1024+2048)).
		{"imagenet-preact-resnet-200", 64666152, "", "own count", 15007481856, 66, 199},
		{"imagenet-resnext-152-32x4d", 59951400, "", "own count", 11709513728, 50, 151},
	} {
		t.Run(tc.arch, func(t *testing.T) {
			g, err := arch.Build(arch.Config{Arch: tc.arch, Batch: 2})
			if err != nil {
				t.Fatal(err)
			}
			st := arch.Count(g)
			if st.Params != tc.params {
				t.Errorf("params %d, want %d (%s)", st.Params, tc.params, tc.source)
			}
			if tc.paper != "" && !matchesPaper(st.Params, tc.paper) {
				t.Errorf("params %d do not round to the paper's %s (%s)", st.Params, tc.paper, tc.source)
			}
			if st.MACs != tc.macs || st.Modules != tc.modules || st.ReLUs != tc.relus {
				t.Errorf("MACs %d, modules %d, ReLUs %d; want %d, %d, %d", st.MACs, st.Modules, st.ReLUs, tc.macs, tc.modules, tc.relus)
			}
			out := "logits"
			want := tensor.Shape{2, 10}
			switch {
			case strings.HasPrefix(tc.arch, "imagenet"):
				want = tensor.Shape{2, 1000}
			case strings.HasPrefix(tc.arch, "scalar"):
				out, want = "y_hat", tensor.Shape{2, 1}
			}
			if n, ok := g.Output(out); !ok || !n.Shape().Eq(want) {
				t.Errorf("output %s: %v, want shape %v", out, n, want)
			}
			if l, ok := g.Output("loss"); !ok || !l.IsScalar() {
				t.Errorf("loss output %v", l)
			}
		})
	}
}

func TestPreAct1001PaperCount(t *testing.T) {
	g, err := arch.Build(arch.Config{Arch: "preact-resnet-1001"})
	if err != nil {
		t.Fatal(err)
	}
	// He et al. 2016b: "ResNet-1001 ... 10.2M parameters". The same count
	// for the 164-layer nets is 1.7M with or without BN.
	if n := weightsOnly(g); n != 10178490 || !matchesPaper(n, "10.2M") {
		t.Errorf("weights without BN: %d, want 10,178,490 (10.2M)", n)
	}
}

func TestPaperImageNetMACs(t *testing.T) {
	// torchvision's documented GFLOPS (multiply-accumulates) for 224x224.
	for name, want := range map[string]float64{"imagenet-resnet-50": 4.09, "imagenet-resnet-101": 7.80, "imagenet-resnet-152": 11.51} {
		g, err := arch.Build(arch.Config{Arch: name})
		if err != nil {
			t.Fatal(err)
		}
		if got := float64(arch.Count(g).MACs) / 1e9; math.Round(got*100) != math.Round(want*100) {
			t.Errorf("%s: %.3f GMACs, want %.2f", name, got, want)
		}
	}
}

func TestListBuildsAndParses(t *testing.T) {
	list := arch.List()
	if len(list) < 25 {
		t.Fatalf("List has %d entries", len(list))
	}
	seen := map[string]bool{}
	for _, in := range list {
		if seen[in.Name] || in.Description == "" || in.Classes < 1 {
			t.Errorf("bad entry %+v", in)
		}
		seen[in.Name] = true
		s, err := arch.Parse(in.Name)
		if err != nil || s.Name != in.Name || s.Family != in.Family {
			t.Errorf("Parse(%q) = %+v, %v", in.Name, s, err)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name      string
		canonical string
		depth     int
		bottle    bool
		errHas    []string
	}{
		{name: "ResNet-110", canonical: "resnet-110", depth: 110},
		{name: "resnet-164", canonical: "resnet-164", depth: 164, bottle: true},
		{name: "resnet-164-basic", canonical: "resnet-164-basic", depth: 164},
		{name: "resnet-110-bottleneck", canonical: "resnet-110-bottleneck", depth: 110, bottle: true},
		{name: "resnet-29", canonical: "resnet-29-bottleneck", depth: 29, bottle: true},
		{name: "resnet-1202", canonical: "resnet-1202", depth: 1202},
		{name: "preact-resnet-1001", canonical: "preact-resnet-1001", depth: 1001, bottle: true},
		{name: "wrn-28-10-d", canonical: "wrn-28-10-d", depth: 28},
		{name: "resnext-29-16x64d", canonical: "resnext-29-16x64d", depth: 29, bottle: true},
		{name: "imagenet-resnet-34", canonical: "imagenet-resnet-34", depth: 34},
		{name: "resnet-21", errHas: []string{"6n+2", "20, 32, 44, 56, 110, 1202", "164"}},
		{name: "resnet-21-basic", errHas: []string{"6n+2"}},
		{name: "resnet-26-bottleneck", errHas: []string{"9n+2"}},
		{name: "resnet-x", errHas: []string{"depth", "resnet-<d>"}},
		{name: "wrn-27-10", errHas: []string{"6n+4", "16, 22, 28, 40, 52"}},
		{name: "wrn-28-0", errHas: []string{"widening factor", "k >= 1"}},
		{name: "wrn-28", errHas: []string{"wrn-<d>-<k>"}},
		{name: "resnext-29-8x0d", errHas: []string{"group width"}},
		{name: "resnext-29-8x64", errHas: []string{"<C>x<w>d"}},
		{name: "resnext-30-8x64d", errHas: []string{"9n+2"}},
		{name: "fig3-vgg-30", errHas: []string{"3m+1"}},
		{name: "inception-v2-10", errHas: []string{"multiple of 3"}},
		{name: "imagenet-resnet-51", errHas: []string{"18, 34, 50, 101, 152, 200"}},
		{name: "imagenet-resnext-34-32x4d", errHas: []string{"50, 101, 152, 200"}},
		{name: "mlp-1", errHas: []string{"at least 2"}},
		{name: "densenet-40", errHas: []string{"unknown architecture", "resnet-<d>", "wrn-<d>-<k>", "inception-v2-<m>", "imagenet-resnext-"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := arch.Parse(tc.name)
			if tc.errHas != nil {
				if err == nil {
					t.Fatalf("no error; parsed %+v", s)
				}
				for _, w := range tc.errHas {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != tc.canonical || s.Depth != tc.depth || s.Bottleneck != tc.bottle {
				t.Errorf("got %+v", s)
			}
			if again, err := arch.Parse(s.Name); err != nil || again != s {
				t.Errorf("canonical name does not round-trip: %+v, %v", again, err)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg    arch.Config
		errHas string
	}{
		{arch.Config{Arch: "fig3-vgg-31", StochasticDepth: true}, "stochastic depth"},
		{arch.Config{Arch: "resnet-20", AfterActivation: true}, "pre-activation"},
		{arch.Config{Arch: "resnet-20", Dropout: 0.2}, "dropout"},
		{arch.Config{Arch: "wrn-16-1", Dropout: 1}, "below 1"},
		{arch.Config{Arch: "resnet-20", Dtype: tensor.Int}, "float32 or float64"},
		{arch.Config{Arch: "resnet-20", Classes: -1}, "positive"},
	} {
		if _, err := arch.Build(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.errHas) {
			t.Errorf("%+v: error %v, want one mentioning %q", tc.cfg, err, tc.errHas)
		}
	}
}

// The scoped names of parameters, buffers and modules are stable.
func TestNames(t *testing.T) {
	g, err := arch.Build(arch.Config{Arch: "resnet-20"})
	if err != nil {
		t.Fatal(err)
	}
	ps := map[string]tensor.Shape{}
	for _, p := range g.Params() {
		ps[p.Name] = p.Node.Shape()
	}
	for name, shape := range map[string]tensor.Shape{
		"stem/conv/weight":           {16, 3, 3, 3},
		"stem/bn/gamma":              {16},
		"stage1/block1/conv1/weight": {16, 16, 3, 3},
		"stage2/block1/conv1/weight": {32, 16, 3, 3},
		"stage2/block3/conv2/weight": {32, 32, 3, 3},
		"stage3/block3/bn2/beta":     {64},
		"head/fc/weight":             {10, 64},
		"head/fc/bias":               {10},
	} {
		if !ps[name].Eq(shape) {
			t.Errorf("%s: %v, want %v", name, ps[name], shape)
		}
	}
	bufs := map[string]bool{}
	for _, b := range g.Buffers() {
		bufs[b.Name] = true
	}
	if !bufs["stage2/block3/bn1/running_mean"] || !bufs["stage3/block1/bn2/running_var"] || len(bufs) != 2*19 {
		t.Errorf("%d buffers, missing stage2/block3/bn1/running_mean or stage3/block1/bn2/running_var", len(bufs))
	}
	var mods []string
	for _, m := range g.Modules() {
		if m.Kind != graph.Residual || m.Parent != nil {
			t.Errorf("module %s: kind %s, parent %v", m.Name, m.Kind, m.Parent)
		}
		mods = append(mods, m.Name)
	}
	if got := strings.Join(mods, " "); got != "stage1/block1 stage1/block2 stage1/block3 stage2/block1 stage2/block2 stage2/block3 stage3/block1 stage3/block2 stage3/block3" {
		t.Errorf("modules %s", got)
	}
	// Deterministic: equal seeds, equal networks.
	h, _ := arch.Build(arch.Config{Arch: "resnet-20"})
	a := g.Params()[5].Node.Value().Data().([]float32)
	b := h.Params()[5].Node.Value().Data().([]float32)
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("equal seeds give different weights")
		}
	}
}

// What the erase pass looks for: the trailing ReLU of every module.
func TestTrailingReLU(t *testing.T) {
	kinds := map[string]graph.Kind{
		"fig3-vgg-7": graph.Plain, "fig3-res-7": graph.Residual, "mlp-4": graph.MLP, "scalar-3": graph.Residual,
		"resnet-8": graph.Residual, "resnet-164": graph.Residual, "resnext-11-2x4d": graph.Residual,
		"inception-v2-3": graph.Inception, "imagenet-resnet-50": graph.Residual,
		"preact-resnet-11": graph.Residual, "wrn-10-2-d": graph.Residual,
	}
	for name, kind := range kinds {
		for _, after := range []bool{false, true} {
			s, _ := arch.Parse(name)
			if after && !s.PreActivation() {
				continue
			}
			cfg := arch.Config{Arch: name, AfterActivation: after}
			if s.ImageNet() {
				cfg.InputShape = [3]int{3, 64, 64}
			}
			g, err := arch.Build(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range g.Leaves() {
				if m.Kind != kind {
					t.Errorf("%s %s: kind %s, want %s", name, m.Name, m.Kind, kind)
				}
				out := m.Output
				kids := graph.Children(out)
				var ok bool
				switch {
				case s.PreActivation() && !after:
					ok = !ops.IsReLU(out) // pre-activation: the module ends in the addition
				case kind == graph.MLP:
					ok = len(kids) == 1 && ops.IsReLU(kids[0]) // ReLU, then dropout
				case kind == graph.Inception:
					ok = len(kids) == 4
					for _, k := range kids {
						ok = ok && ops.IsReLU(k) // every branch ends in a ReLU
					}
				default:
					ok = ops.IsReLU(out)
				}
				if !ok {
					t.Errorf("%s (after-activation %v) module %s ends in %v", name, after, m.Name, out)
				}
				relus, err := erase.Locate(m, erase.Last)
				want := 1
				if kind == graph.Inception {
					want = 4
				}
				if s.PreActivation() && !after {
					if err == nil {
						t.Errorf("%s: erase finds a trailing ReLU in pre-activation module %s", name, m.Name)
					}
				} else if err != nil || len(relus) != want {
					t.Errorf("%s module %s: erase locates %d trailing ReLUs (%v), want %d", name, m.Name, len(relus), err, want)
				}
			}
		}
	}
}

// The after-activation conversion (section 3.1) keeps the convolutions and
// the number of BN layers and ReLUs, and moves every BN+ReLU after a conv.
func TestAfterActivationConversion(t *testing.T) {
	for _, name := range []string{"preact-resnet-110", "preact-resnet-164", "wrn-16-4-d", "imagenet-preact-resnet-50"} {
		cfg := arch.Config{Arch: name}
		if strings.HasPrefix(name, "imagenet") {
			cfg.InputShape = [3]int{3, 64, 64}
		}
		pre, err := arch.Build(cfg)
		if err != nil {
			t.Fatal(err)
		}
		cfg.AfterActivation = true
		post, err := arch.Build(cfg)
		if err != nil {
			t.Fatal(err)
		}
		convs := func(g *graph.Graph) (string, int) {
			var ws []string
			bns := 0
			for _, p := range g.Params() {
				if p.Node.Dims() == 4 {
					ws = append(ws, fmt.Sprintf("%s%v", p.Name, p.Node.Shape()))
				}
				if strings.HasSuffix(p.Name, "/gamma") {
					bns++
				}
			}
			return strings.Join(ws, " "), bns
		}
		w1, bn1 := convs(pre)
		w2, bn2 := convs(post)
		s1, s2 := arch.Count(pre), arch.Count(post)
		if w1 != w2 || bn1 != bn2 || s1.ReLUs != s2.ReLUs || s1.MACs != s2.MACs || s1.Modules != s2.Modules {
			t.Errorf("%s: conversion changed convs (%v), BNs %d -> %d, stats %+v -> %+v", name, w1 == w2, bn1, bn2, s1, s2)
		}
	}
	// Converted pre-act ResNet-110 is the CIFAR ResNet-110.
	a, _ := arch.Build(arch.Config{Arch: "preact-resnet-110", AfterActivation: true})
	b, _ := arch.Build(arch.Config{Arch: "resnet-110"})
	if arch.Count(a) != arch.Count(b) {
		t.Errorf("after-activation preact-resnet-110 %+v differs from resnet-110 %+v", arch.Count(a), arch.Count(b))
	}
}

// Stochastic depth gates every residual branch, in block order, with
// survival 1 - (l/L)·0.5 (Huang et al. 2016), and adds nothing else.
func TestStochasticDepth(t *testing.T) {
	for _, name := range []string{"resnet-20", "preact-resnet-164", "wrn-16-2", "resnext-11-2x4d", "fig3-res-7", "imagenet-resnet-50"} {
		plain, err := arch.Build(arch.Config{Arch: name})
		if err != nil {
			t.Fatal(err)
		}
		sd, err := arch.Build(arch.Config{Arch: name, StochasticDepth: true})
		if err != nil {
			t.Fatal(err)
		}
		blocks := sd.Leaves()
		n1, n2 := len(plain.Expr().AllNodes()), len(sd.Expr().AllNodes())
		if n2-n1 != len(blocks) || plain.ParamCount() != sd.ParamCount() {
			t.Errorf("%s: %d -> %d nodes with %d blocks", name, n1, n2, len(blocks))
		}
		for l, m := range blocks {
			var gates []float64
			for _, n := range m.Members {
				if ops.IsStochasticDepth(n) {
					gates = append(gates, n.Op().(*ops.StochasticDepthOp).Survival())
				}
			}
			want := 1 - float64(l+1)/float64(len(blocks))*0.5
			if len(gates) != 1 || math.Abs(gates[0]-want) > 1e-12 {
				t.Errorf("%s %s: survival %v, want [%g]", name, m.Name, gates, want)
			}
		}
	}
}

// Dropout rates: MLP 0.1 by default, WRN -d 0.3, Config.Dropout overrides,
// a negative rate removes dropout.
func TestDropoutRates(t *testing.T) {
	for _, tc := range []struct {
		cfg   arch.Config
		rate  float64
		count int
	}{
		{arch.Config{Arch: "mlp-12"}, 0.1, 11},
		{arch.Config{Arch: "mlp-12", Dropout: 0.2}, 0.2, 11},
		{arch.Config{Arch: "mlp-12", Dropout: -1}, 0, 0},
		{arch.Config{Arch: "wrn-28-10-d"}, 0.3, 12},
		{arch.Config{Arch: "wrn-28-10-d", AfterActivation: true}, 0.3, 12},
		{arch.Config{Arch: "wrn-28-10"}, 0, 0},
		{arch.Config{Arch: "wrn-28-10", Dropout: 0.4}, 0.4, 12},
	} {
		g, err := arch.Build(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		count := 0
		for _, n := range g.Expr().AllNodes() {
			if ops.IsDropout(n) {
				count++
				if r := n.Op().(*ops.DropoutOp).Rate(); r != tc.rate {
					t.Errorf("%+v: rate %g, want %g", tc.cfg, r, tc.rate)
				}
			}
		}
		if count != tc.count {
			t.Errorf("%+v: %d dropouts, want %d", tc.cfg, count, tc.count)
		}
	}
}

// Every CIFAR/MNIST family at reduced depth runs forward and backward on a
// tiny batch, in training and inference mode; every parameter gets a
// gradient of its shape.
func TestForwardBackward(t *testing.T) {
	for _, tc := range []arch.Config{
		{Arch: "fig3-vgg-7"},
		{Arch: "fig3-res-7", StochasticDepth: true},
		{Arch: "mlp-3", InputShape: [3]int{1, 4, 4}},
		{Arch: "scalar-3"},
		{Arch: "resnet-8"},
		{Arch: "resnet-11", StochasticDepth: true}, // bottleneck
		{Arch: "preact-resnet-8"},
		{Arch: "preact-resnet-11-bottleneck"},
		{Arch: "preact-resnet-11-bottleneck", AfterActivation: true},
		{Arch: "wrn-10-2-d"},
		{Arch: "wrn-10-2-d", AfterActivation: true, StochasticDepth: true},
		{Arch: "resnext-11-2x4d"},
		{Arch: "inception-v2-3"},
		{Arch: "resnet-20", InputShape: [3]int{3, 32, 32}},
	} {
		name := fmt.Sprintf("%s/sd=%v/after=%v", tc.Arch, tc.StochasticDepth, tc.AfterActivation)
		t.Run(name, func(t *testing.T) {
			tc.Batch, tc.Classes = 2, 3
			if tc.InputShape == [3]int{} {
				tc.InputShape = [3]int{3, 8, 8}
			}
			g, err := arch.Build(tc)
			if err != nil {
				t.Fatal(err)
			}
			x, _ := g.Input("x")
			y, _ := g.Input("y")
			xv := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(x.Shape()...))
			for i, d := 0, xv.Data().([]float32); i < len(d); i++ {
				d[i] = float32(math.Sin(float64(i) * 0.7))
			}
			var yv *tensor.Dense
			if y.Dtype() == tensor.Int {
				yv = tensor.New(tensor.WithBacking([]int{0, 2}))
			} else {
				yv = tensor.New(tensor.WithShape(2, 1), tensor.WithBacking([]float32{0.5, -1}))
			}
			if err := gorgonia.Let(x, xv); err != nil {
				t.Fatal(err)
			}
			if err := gorgonia.Let(y, yv); err != nil {
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
			// The erased graph (half the modules; pre-activation nets
			// converted) trains too.
			if s, _ := arch.Parse(tc.Arch); !s.PreActivation() || tc.AfterActivation {
				h, _, err := erase.Apply(g, erase.Options{Proportion: 0.5})
				if err != nil {
					t.Fatal(err)
				}
				q, err := graph.Compile(h, "loss")
				if err != nil {
					t.Fatal(err)
				}
				if err := q.Train(); err != nil {
					t.Fatal(err)
				}
				if l := q.Loss(); math.IsNaN(l) || math.IsInf(l, 0) {
					t.Errorf("erased graph: loss %v", l)
				}
				q.Close()
				// Back to the original graph's machine for the checks below.
				if err := p.Train(); err != nil {
					t.Fatal(err)
				}
			}
			ps := g.Params()
			for i, prm := range ps {
				gr, err := p.Grad(prm)
				if err != nil {
					t.Fatal(err)
				}
				if !gr.Shape().Eq(prm.Node.Shape()) {
					t.Errorf("%s: gradient shape %v", prm.Name, gr.Shape())
				}
				// The gradient reaches the first layer and the classifier.
				if i == 0 || i == len(ps)-1 {
					norm := 0.0
					for _, v := range gr.Data().([]float32) {
						norm += float64(v) * float64(v)
					}
					if norm == 0 || math.IsNaN(norm) || math.IsInf(norm, 0) {
						t.Errorf("%s: gradient norm² %v", prm.Name, norm)
					}
				}
			}
			if err := p.Infer(); err != nil {
				t.Fatal(err)
			}
			out, _ := g.Output("logits")
			if out == nil {
				out, _ = g.Output("y_hat")
			}
			for _, v := range out.Value().Data().([]float32) {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("inference output %v", out.Value())
				}
			}
		})
	}
}

// EraseReLU leaves parameters, MACs and modules unchanged and removes
// ceil(n·p) modules' trailing ReLUs (one per module, one per branch for
// inception), spread as section 3.1 says.
func TestEraseKeepsCountsAndFollowsProportion(t *testing.T) {
	for _, tc := range []struct {
		cfg      arch.Config
		trailing int // trailing ReLUs per module
	}{
		{arch.Config{Arch: "fig3-vgg-31"}, 1},
		{arch.Config{Arch: "fig3-res-31"}, 1},
		{arch.Config{Arch: "mlp-12"}, 1},
		{arch.Config{Arch: "scalar-20"}, 1},
		{arch.Config{Arch: "resnet-110"}, 1},
		{arch.Config{Arch: "resnet-164"}, 1},
		{arch.Config{Arch: "preact-resnet-164", AfterActivation: true}, 1},
		{arch.Config{Arch: "wrn-52-1-d", AfterActivation: true}, 1},
		{arch.Config{Arch: "resnext-29-8x64d"}, 1},
		{arch.Config{Arch: "inception-v2-30"}, 4},
		{arch.Config{Arch: "imagenet-resnet-50"}, 1},
	} {
		g, err := arch.Build(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		before := arch.Count(g)
		for _, p := range []float64{0.05, 0.25, 0.5, 0.75, 1} {
			h, rep, err := erase.Apply(g, erase.Options{Proportion: p})
			if err != nil {
				t.Fatalf("%s p=%g: %v", tc.cfg.Arch, p, err)
			}
			after := arch.Count(h)
			n := int(math.Ceil(float64(before.Modules)*p - 1e-9))
			if after.Params != before.Params || after.MACs != before.MACs || after.Modules != before.Modules {
				t.Errorf("%s p=%g: erasing changed %+v to %+v", tc.cfg.Arch, p, before, after)
			}
			if len(rep.Erased) != n || after.ReLUs != before.ReLUs-n*tc.trailing || rep.ReLUsAfter != after.ReLUs {
				t.Errorf("%s p=%g: erased %d modules, ReLUs %d -> %d; want %d modules, %d ReLUs",
					tc.cfg.Arch, p, len(rep.Erased), before.ReLUs, after.ReLUs, n, before.ReLUs-n*tc.trailing)
			}
			if rep.Erased[0] != g.Leaves()[0].Name {
				t.Errorf("%s p=%g: first erased module %s, want the first module", tc.cfg.Arch, p, rep.Erased[0])
			}
		}
	}
}

// A few steps of plain SGD on one fixed batch lower the loss: the
// gradients of every family point downhill.
func TestSGDLowersLoss(t *testing.T) {
	for _, tc := range []struct {
		cfg   arch.Config
		erase float64
	}{
		{arch.Config{Arch: "fig3-vgg-7"}, 0},
		{arch.Config{Arch: "fig3-res-7"}, 0.5},
		{arch.Config{Arch: "mlp-3", InputShape: [3]int{1, 4, 4}}, 0},
		{arch.Config{Arch: "scalar-3"}, 0.5},
		{arch.Config{Arch: "resnet-8"}, 1},
		{arch.Config{Arch: "preact-resnet-8"}, 0},
		{arch.Config{Arch: "wrn-10-2", AfterActivation: true}, 1},
		{arch.Config{Arch: "resnext-11-2x4d"}, 0},
		{arch.Config{Arch: "inception-v2-3"}, 0.5},
	} {
		t.Run(tc.cfg.Arch, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Batch, cfg.Classes, cfg.Seed = 4, 3, 5
			if cfg.InputShape == [3]int{} {
				cfg.InputShape = [3]int{3, 8, 8}
			}
			g, err := arch.Build(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if tc.erase > 0 {
				if g, _, err = erase.Apply(g, erase.Options{Proportion: tc.erase}); err != nil {
					t.Fatal(err)
				}
			}
			x, _ := g.Input("x")
			y, _ := g.Input("y")
			xv := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(x.Shape()...))
			for i, d := 0, xv.Data().([]float32); i < len(d); i++ {
				d[i] = float32(math.Sin(float64(i)*1.3) + 0.3*math.Cos(float64(i*i)))
			}
			yv := tensor.New(tensor.WithBacking([]int{0, 1, 2, 1}))
			if y.Dtype() != tensor.Int {
				yv = tensor.New(tensor.WithShape(4, 1), tensor.WithBacking([]float32{0.5, -1, 0.2, 1}))
			}
			if err := gorgonia.Let(x, xv); err != nil {
				t.Fatal(err)
			}
			if err := gorgonia.Let(y, yv); err != nil {
				t.Fatal(err)
			}
			p, err := graph.Compile(g, "loss")
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			lr := float32(0.02)
			if cfg.Arch == "scalar-3" {
				lr = 0.001 // unnormalised regression output, He-initialised
			}
			var losses []float64
			for step := 0; step < 8; step++ {
				if err := p.Train(); err != nil {
					t.Fatal(err)
				}
				losses = append(losses, p.Loss())
				for _, prm := range g.Params() {
					gr, err := p.Grad(prm)
					if err != nil {
						t.Fatal(err)
					}
					w, d := prm.Node.Value().Data().([]float32), gr.Data().([]float32)
					for i := range w {
						w[i] -= lr * d[i]
					}
				}
			}
			if !(losses[len(losses)-1] < losses[0]) {
				t.Errorf("loss did not fall: %v", losses)
			}
		})
	}
}
