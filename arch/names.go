package arch

import (
	"fmt"
	"strconv"
	"strings"
)

// Family is one parameterised constructor.
type Family string

// The families of the paper.
const (
	Fig3VGG         Family = "fig3-vgg"               // Figure 3(a,d): VGG-style, one ReLU per module
	Fig3Res         Family = "fig3-res"               // Figure 3(b): residual-style, one ReLU per module
	MLPNet          Family = "mlp"                    // Figure 3(c): MLP for MNIST
	ScalarNet       Family = "scalar"                 // Figure 4: f: R -> R residual net
	ResNet          Family = "resnet"                 // He et al. 2016, CIFAR
	PreActResNet    Family = "preact-resnet"          // He et al. 2016b, CIFAR
	WideResNet      Family = "wrn"                    // Zagoruyko & Komodakis 2016
	ResNeXt         Family = "resnext"                // Xie et al. 2017, CIFAR
	InceptionV2     Family = "inception-v2"           // section 4.2, CIFAR
	ImageNetResNet  Family = "imagenet-resnet"        // He et al. 2016, ImageNet
	ImageNetPreAct  Family = "imagenet-preact-resnet" // He et al. 2016b, ImageNet
	ImageNetResNeXt Family = "imagenet-resnext"       // Xie et al. 2017, ImageNet
)

// Spec is a parsed architecture name.
type Spec struct {
	// Name is the canonical name, e.g. "resnet-110", "wrn-28-10-d".
	Name   string
	Family Family
	// Depth is the family's depth figure: weighted layers for the CNNs and
	// the MLP, modules for the scalar net and Inception-V2.
	Depth int
	// Bottleneck selects bottleneck residual blocks.
	Bottleneck bool
	// Width is the widening factor k of a wide ResNet.
	Width int
	// Cardinality and GroupWidth are ResNeXt's C and d (C x d).
	Cardinality, GroupWidth int
	// Dropout is the family's default dropout rate (0.3 for WRN-*-d, 0.1
	// for the MLP), used unless Config.Dropout overrides it.
	Dropout float64
}

// Residual reports whether the family has residual blocks (and so supports
// stochastic depth).
func (s Spec) Residual() bool {
	switch s.Family {
	case Fig3Res, ResNet, PreActResNet, WideResNet, ResNeXt, ImageNetResNet, ImageNetPreAct, ImageNetResNeXt:
		return true
	}
	return false
}

// PreActivation reports whether the family is built of pre-activation
// blocks, which Config.AfterActivation converts before erasing.
func (s Spec) PreActivation() bool {
	return s.Family == PreActResNet || s.Family == WideResNet || s.Family == ImageNetPreAct
}

// ImageNet reports whether the family is an ImageNet model (224x224, 1000 classes).
func (s Spec) ImageNet() bool {
	return s.Family == ImageNetResNet || s.Family == ImageNetPreAct || s.Family == ImageNetResNeXt
}

// pattern is one family's name syntax, for Parse and its errors.
type pattern struct {
	prefix   string
	family   Family
	syntax   string
	examples string
}

// patterns in match order (longer prefixes first).
var patterns = []pattern{
	{"imagenet-preact-resnet-", ImageNetPreAct, "imagenet-preact-resnet-<d>, d in 18, 34, 50, 101, 152, 200", "imagenet-preact-resnet-200"},
	{"imagenet-resnext-", ImageNetResNeXt, "imagenet-resnext-<d>-<C>x<w>d, d in 50, 101, 152, 200", "imagenet-resnext-152-32x4d"},
	{"imagenet-resnet-", ImageNetResNet, "imagenet-resnet-<d>, d in 18, 34, 50, 101, 152, 200", "imagenet-resnet-50, imagenet-resnet-152"},
	{"preact-resnet-", PreActResNet, "preact-resnet-<d>[-basic|-bottleneck], d = 6n+2 (basic) or 9n+2 (bottleneck)", "preact-resnet-110, preact-resnet-164, preact-resnet-1001"},
	{"resnext-", ResNeXt, "resnext-<d>-<C>x<w>d, d = 9n+2", "resnext-29-8x64d, resnext-29-16x64d"},
	{"resnet-", ResNet, "resnet-<d>[-basic|-bottleneck], d = 6n+2 (basic) or 9n+2 (bottleneck)", "resnet-20, resnet-110, resnet-164, resnet-1202"},
	{"wrn-", WideResNet, "wrn-<d>-<k>[-d], d = 6n+4, k >= 1, -d adds dropout 0.3", "wrn-28-10, wrn-52-1-d"},
	{"inception-v2-", InceptionV2, "inception-v2-<m>, m modules, a multiple of 3", "inception-v2-30"},
	{"fig3-vgg-", Fig3VGG, "fig3-vgg-<d>, d = 3m+1 weighted layers", "fig3-vgg-31"},
	{"fig3-res-", Fig3Res, "fig3-res-<d>, d = 3m+1 weighted layers", "fig3-res-31"},
	{"mlp-", MLPNet, "mlp-<d>, d >= 2 fully-connected layers", "mlp-12"},
	{"scalar-", ScalarNet, "scalar-<n>, n >= 1 residual modules", "scalar-300"},
}

// Patterns lists every family's name syntax with examples, one per line.
func Patterns() []string {
	width := 0
	for _, p := range patterns {
		width = max(width, len(p.syntax))
	}
	out := make([]string, len(patterns))
	for i, p := range patterns {
		out[i] = fmt.Sprintf("%-*s  e.g. %s", width, p.syntax, p.examples)
	}
	return out
}

var imagenetDepths = map[int][]int{
	18: {2, 2, 2, 2}, 34: {3, 4, 6, 3}, 50: {3, 4, 6, 3},
	101: {3, 4, 23, 3}, 152: {3, 8, 36, 3}, 200: {3, 24, 36, 3},
}

// Parse reads an architecture name (case-insensitive). Unknown names and
// impossible depths or widths give an error that says what is valid.
func Parse(name string) (Spec, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	for _, p := range patterns {
		rest, ok := strings.CutPrefix(n, p.prefix)
		if !ok {
			continue
		}
		s, err := parseFamily(p.family, rest)
		if err != nil {
			return Spec{}, fmt.Errorf("architecture %q: %w (valid: %s, e.g. %s)", name, err, p.syntax, p.examples)
		}
		return s, nil
	}
	return Spec{}, fmt.Errorf("unknown architecture %q; valid names:\n  %s", name, strings.Join(Patterns(), "\n  "))
}

func atoi(s, what string) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		return 0, fmt.Errorf("%s %q is not a positive integer", what, s)
	}
	return v, nil
}

// resnetDepth decides the block type of a CIFAR (pre-act) ResNet depth.
// Without a suffix, a depth 9n+2 of at least 164 means bottleneck blocks
// (ResNet-164, ResNet-1001 in He et al. 2016b), any other 6n+2 depth basic
// blocks (ResNet-20 ... ResNet-110, ResNet-1202).
func resnetDepth(rest string) (depth int, bottleneck bool, suffix string, err error) {
	block := ""
	for _, b := range []string{"-basic", "-bottleneck"} {
		if r, ok := strings.CutSuffix(rest, b); ok {
			rest, block = r, b[1:]
		}
	}
	if depth, err = atoi(rest, "depth"); err != nil {
		return
	}
	basicOK := depth >= 8 && (depth-2)%6 == 0
	bottleOK := depth >= 11 && (depth-2)%9 == 0
	switch block {
	case "basic":
		if !basicOK {
			err = fmt.Errorf("depth %d is not 6n+2 (n >= 1), as basic blocks need", depth)
		}
		if bottleOK && depth >= 164 {
			suffix = "-basic"
		}
	case "bottleneck":
		if !bottleOK {
			err = fmt.Errorf("depth %d is not 9n+2 (n >= 1), as bottleneck blocks need", depth)
		}
		bottleneck = true
		if !(depth >= 164) {
			suffix = "-bottleneck"
		}
	default:
		switch {
		case bottleOK && depth >= 164:
			bottleneck = true
		case basicOK:
		case bottleOK:
			bottleneck, suffix = true, "-bottleneck"
		default:
			err = fmt.Errorf("depth %d is neither 6n+2 (basic blocks: 20, 32, 44, 56, 110, 1202) nor 9n+2 (bottleneck blocks: 164, 1001)", depth)
		}
	}
	return
}

func parseFamily(f Family, rest string) (Spec, error) {
	s := Spec{Family: f}
	var err error
	switch f {
	case Fig3VGG, Fig3Res:
		if s.Depth, err = atoi(rest, "depth"); err != nil {
			return s, err
		}
		if s.Depth < 4 || (s.Depth-1)%3 != 0 {
			return s, fmt.Errorf("depth %d is not 3m+1 with m >= 1 (a first conv and three stages of m modules)", s.Depth)
		}
		s.Name = fmt.Sprintf("%s-%d", f, s.Depth)
	case MLPNet:
		if s.Depth, err = atoi(rest, "depth"); err != nil {
			return s, err
		}
		if s.Depth < 2 {
			return s, fmt.Errorf("depth %d: an MLP needs at least 2 layers", s.Depth)
		}
		s.Dropout = 0.1
		s.Name = fmt.Sprintf("mlp-%d", s.Depth)
	case ScalarNet:
		if s.Depth, err = atoi(rest, "module count"); err != nil {
			return s, err
		}
		s.Name = fmt.Sprintf("scalar-%d", s.Depth)
	case ResNet, PreActResNet:
		var suffix string
		if s.Depth, s.Bottleneck, suffix, err = resnetDepth(rest); err != nil {
			return s, err
		}
		s.Name = fmt.Sprintf("%s-%d%s", f, s.Depth, suffix)
	case WideResNet:
		r, drop := strings.CutSuffix(rest, "-d")
		parts := strings.Split(r, "-")
		if len(parts) != 2 {
			return s, fmt.Errorf("want depth and widening factor")
		}
		if s.Depth, err = atoi(parts[0], "depth"); err != nil {
			return s, err
		}
		if s.Width, err = atoi(parts[1], "widening factor"); err != nil {
			return s, err
		}
		if s.Depth < 10 || (s.Depth-4)%6 != 0 {
			return s, fmt.Errorf("depth %d is not 6n+4 with n >= 1 (e.g. 16, 22, 28, 40, 52)", s.Depth)
		}
		s.Name = fmt.Sprintf("wrn-%d-%d", s.Depth, s.Width)
		if drop {
			s.Dropout = 0.3
			s.Name += "-d"
		}
	case ResNeXt, ImageNetResNeXt:
		parts := strings.Split(rest, "-")
		if len(parts) != 2 {
			return s, fmt.Errorf("want depth and <C>x<w>d")
		}
		if s.Depth, err = atoi(parts[0], "depth"); err != nil {
			return s, err
		}
		cw, ok := strings.CutSuffix(parts[1], "d")
		c, w, ok2 := strings.Cut(cw, "x")
		if !ok || !ok2 {
			return s, fmt.Errorf("width %q is not <C>x<w>d, e.g. 8x64d", parts[1])
		}
		if s.Cardinality, err = atoi(c, "cardinality"); err != nil {
			return s, err
		}
		if s.GroupWidth, err = atoi(w, "group width"); err != nil {
			return s, err
		}
		s.Bottleneck = true
		if f == ResNeXt && (s.Depth < 11 || (s.Depth-2)%9 != 0) {
			return s, fmt.Errorf("depth %d is not 9n+2 with n >= 1 (e.g. 29)", s.Depth)
		}
		if f == ImageNetResNeXt {
			if _, ok := imagenetDepths[s.Depth]; !ok || s.Depth < 50 {
				return s, fmt.Errorf("depth %d is not one of 50, 101, 152, 200", s.Depth)
			}
		}
		s.Name = fmt.Sprintf("%s-%d-%dx%dd", f, s.Depth, s.Cardinality, s.GroupWidth)
	case InceptionV2:
		if s.Depth, err = atoi(rest, "module count"); err != nil {
			return s, err
		}
		if s.Depth%3 != 0 {
			return s, fmt.Errorf("%d modules is not a multiple of 3 (three stages of equal length)", s.Depth)
		}
		s.Name = fmt.Sprintf("inception-v2-%d", s.Depth)
	case ImageNetResNet, ImageNetPreAct:
		if s.Depth, err = atoi(rest, "depth"); err != nil {
			return s, err
		}
		if _, ok := imagenetDepths[s.Depth]; !ok {
			return s, fmt.Errorf("depth %d is not one of 18, 34, 50, 101, 152, 200", s.Depth)
		}
		s.Bottleneck = s.Depth >= 50
		s.Name = fmt.Sprintf("%s-%d", f, s.Depth)
	}
	return s, nil
}

// Info describes one architecture of the paper.
type Info struct {
	Name        string
	Family      Family
	Description string
	// Input is the default input (C, H, W); the MLP flattens it, the scalar
	// net takes (1, 1, 1).
	Input   [3]int
	Classes int
}

var (
	cifarInput    = [3]int{3, 32, 32}
	mnistInput    = [3]int{1, 28, 28}
	imagenetInput = [3]int{3, 224, 224}
	scalarInput   = [3]int{1, 1, 1}
)

// List returns the architectures the paper trains, with their default input
// and classes. Every family accepts other depths and widths too (Patterns).
func List() []Info {
	var out []Info
	add := func(name, desc string, in [3]int, classes int) {
		s, err := Parse(name)
		if err != nil {
			panic(err)
		}
		out = append(out, Info{Name: s.Name, Family: s.Family, Description: desc, Input: in, Classes: classes})
	}
	add("fig3-vgg-31", "Figure 3(a,d): VGG-style, 3x3 conv + 3 stages of 10 conv-BN-ReLU modules (16/32/64)", cifarInput, 10)
	add("fig3-res-31", "Figure 3(b): residual-style, 3x3 conv + 3 stages of 10 ReLU(x + BN(conv(x))) modules", cifarInput, 10)
	add("mlp-12", "Figure 3(c): MNIST MLP, 11 x (FC 1000, BN, ReLU, dropout) + FC 10", mnistInput, 10)
	add("scalar-300", "Figure 4: f: R -> R, FC 200 + N residual modules ReLU(h + LN(FC(h))) + FC 1", scalarInput, 1)
	for _, d := range []int{20, 32, 44, 56, 110, 1202} {
		add(fmt.Sprintf("resnet-%d", d), fmt.Sprintf("CIFAR ResNet-%d (He 2016), basic blocks, option-A shortcuts", d), cifarInput, 10)
	}
	add("resnet-164", "CIFAR ResNet-164 (He 2016b), bottleneck blocks, projection shortcuts", cifarInput, 10)
	for _, d := range []int{62, 110, 164, 1001} {
		block := "basic"
		if d >= 164 {
			block = "bottleneck"
		}
		add(fmt.Sprintf("preact-resnet-%d", d), fmt.Sprintf("CIFAR pre-activation ResNet-%d (He 2016b), %s blocks", d, block), cifarInput, 10)
	}
	for _, w := range []string{"40-4", "28-10", "28-10-d", "52-1", "52-1-d", "52-10"} {
		desc := "Wide ResNet WRN-" + strings.TrimSuffix(w, "-d") + " (Zagoruyko & Komodakis 2016), pre-activation"
		if strings.HasSuffix(w, "-d") {
			desc += ", dropout 0.3 between convs"
		}
		add("wrn-"+w, desc, cifarInput, 10)
	}
	add("resnext-29-8x64d", "ResNeXt-29 8x64d for CIFAR (Xie 2017), grouped bottlenecks 256/512/1024", cifarInput, 10)
	add("resnext-29-16x64d", "ResNeXt-29 16x64d for CIFAR (Xie 2017), grouped bottlenecks 256/512/1024", cifarInput, 10)
	add("inception-v2-30", "Inception-V2 for CIFAR (section 4.2), 64-ch conv + 3 stages of 10 modules, branches 1:8:2:1", cifarInput, 10)
	for _, d := range []int{50, 101, 152, 200} {
		add(fmt.Sprintf("imagenet-resnet-%d", d), fmt.Sprintf("ImageNet ResNet-%d (He 2016), bottleneck blocks", d), imagenetInput, 1000)
	}
	add("imagenet-preact-resnet-200", "ImageNet pre-activation ResNet-200 (He 2016b)", imagenetInput, 1000)
	add("imagenet-resnext-152-32x4d", "ImageNet ResNeXt-152 32x4d (Xie 2017)", imagenetInput, 1000)
	return out
}

// defaults returns the family's default input and classes.
func (s Spec) defaults() (in [3]int, classes int) {
	switch {
	case s.ImageNet():
		return imagenetInput, 1000
	case s.Family == MLPNet:
		return mnistInput, 10
	case s.Family == ScalarNet:
		return scalarInput, 1
	}
	return cifarInput, 10
}
