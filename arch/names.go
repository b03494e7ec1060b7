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

var (
	cifarInput    = [3]int{3, 32, 32}
	mnistInput    = [3]int{1, 28, 28}
	imagenetInput = [3]int{3, 224, 224}
	scalarInput   = [3]int{1, 1, 1}
)

// family is one row of the table of families: its name syntax, the rule
// that reads and checks the depth (and width) after "<family>-", its
// default input and classes, and what its blocks are.
type family struct {
	Family
	syntax, examples string
	rule             rule
	input            [3]int
	classes          int
	residual         bool    // residual blocks (stochastic depth applies)
	preact           bool    // pre-activation blocks (Config.AfterActivation converts them)
	dropout          float64 // default dropout rate (Spec.Dropout)
}

// families in the order Patterns lists them.
var families = []family{
	{Family: ImageNetPreAct, syntax: "imagenet-preact-resnet-<d>, d in 18, 34, 50, 101, 152, 200", examples: "imagenet-preact-resnet-200",
		rule: imagenetResNet, input: imagenetInput, classes: 1000, residual: true, preact: true},
	{Family: ImageNetResNeXt, syntax: "imagenet-resnext-<d>-<C>x<w>d, d in 50, 101, 152, 200", examples: "imagenet-resnext-152-32x4d",
		rule: grouped(imagenetDepth(50)), input: imagenetInput, classes: 1000, residual: true},
	{Family: ImageNetResNet, syntax: "imagenet-resnet-<d>, d in 18, 34, 50, 101, 152, 200", examples: "imagenet-resnet-50, imagenet-resnet-152",
		rule: imagenetResNet, input: imagenetInput, classes: 1000, residual: true},
	{Family: PreActResNet, syntax: "preact-resnet-<d>[-basic|-bottleneck], d = 6n+2 (basic) or 9n+2 (bottleneck)", examples: "preact-resnet-110, preact-resnet-164, preact-resnet-1001",
		rule: resnetDepth, input: cifarInput, classes: 10, residual: true, preact: true},
	{Family: ResNeXt, syntax: "resnext-<d>-<C>x<w>d, d = 9n+2", examples: "resnext-29-8x64d, resnext-29-16x64d",
		rule: grouped(linear(9, 2, "n", "(e.g. 29)")), input: cifarInput, classes: 10, residual: true},
	{Family: ResNet, syntax: "resnet-<d>[-basic|-bottleneck], d = 6n+2 (basic) or 9n+2 (bottleneck)", examples: "resnet-20, resnet-110, resnet-164, resnet-1202",
		rule: resnetDepth, input: cifarInput, classes: 10, residual: true},
	{Family: WideResNet, syntax: "wrn-<d>-<k>[-d], d = 6n+4, k >= 1, -d adds dropout 0.3", examples: "wrn-28-10, wrn-52-1-d",
		rule: wideDepth, input: cifarInput, classes: 10, residual: true, preact: true},
	{Family: InceptionV2, syntax: "inception-v2-<m>, m modules, a multiple of 3", examples: "inception-v2-30",
		rule: depth("module count", func(m int) error {
			if m%3 != 0 {
				return fmt.Errorf("%d modules is not a multiple of 3 (three stages of equal length)", m)
			}
			return nil
		}), input: cifarInput, classes: 10},
	{Family: Fig3VGG, syntax: "fig3-vgg-<d>, d = 3m+1 weighted layers", examples: "fig3-vgg-31",
		rule: depth("depth", linear(3, 1, "m", "(a first conv and three stages of m modules)")), input: cifarInput, classes: 10},
	{Family: Fig3Res, syntax: "fig3-res-<d>, d = 3m+1 weighted layers", examples: "fig3-res-31",
		rule: depth("depth", linear(3, 1, "m", "(a first conv and three stages of m modules)")), input: cifarInput, classes: 10, residual: true},
	{Family: MLPNet, syntax: "mlp-<d>, d >= 2 fully-connected layers", examples: "mlp-12",
		rule: depth("depth", func(d int) error {
			if d < 2 {
				return fmt.Errorf("depth %d: an MLP needs at least 2 layers", d)
			}
			return nil
		}), input: mnistInput, classes: 10, dropout: 0.1},
	{Family: ScalarNet, syntax: "scalar-<n>, n >= 1 residual modules", examples: "scalar-300",
		rule: depth("module count", nil), input: scalarInput, classes: 1},
}

// imagenetDepths are the blocks per stage of the ImageNet ResNets.
var imagenetDepths = map[int][]int{
	18: {2, 2, 2, 2}, 34: {3, 4, 6, 3}, 50: {3, 4, 6, 3},
	101: {3, 4, 23, 3}, 152: {3, 8, 36, 3}, 200: {3, 24, 36, 3},
}

// A rule reads the name after "<family>-" into s and returns the
// canonical form of it, or why the name is not valid.
type rule func(s *Spec, rest string) (string, error)

func atoi(s, what string) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		return 0, fmt.Errorf("%s %q is not a positive integer", what, s)
	}
	return v, nil
}

// depth is a name that is one number, checked by valid.
func depth(what string, valid func(int) error) rule {
	return func(s *Spec, rest string) (string, error) {
		d, err := atoi(rest, what)
		if err != nil {
			return "", err
		}
		s.Depth = d
		if valid == nil {
			return strconv.Itoa(d), nil
		}
		return strconv.Itoa(d), valid(d)
	}
}

// linear accepts depths a*n+b with n >= 1 (n named by letter).
func linear(a, b int, letter, hint string) func(int) error {
	return func(d int) error {
		if d < a+b || (d-b)%a != 0 {
			return fmt.Errorf("depth %d is not %d%s+%d with %s >= 1 %s", d, a, letter, b, letter, hint)
		}
		return nil
	}
}

// imagenetDepth accepts the ImageNet depths from min up.
func imagenetDepth(min int) func(int) error {
	return func(d int) error {
		if _, ok := imagenetDepths[d]; !ok || d < min {
			return fmt.Errorf("depth %d is not one of %s", d, map[int]string{18: "18, 34, 50, 101, 152, 200", 50: "50, 101, 152, 200"}[min])
		}
		return nil
	}
}

// imagenetResNet is an ImageNet depth; 50 layers and more have bottleneck
// blocks (He et al. 2016, table 1).
func imagenetResNet(s *Spec, rest string) (string, error) {
	tail, err := depth("depth", imagenetDepth(18))(s, rest)
	s.Bottleneck = s.Depth >= 50
	return tail, err
}

// resnetDepth decides the block type of a CIFAR (pre-act) ResNet depth.
// Without a suffix, a depth 9n+2 of at least 164 means bottleneck blocks
// (ResNet-164, ResNet-1001 in He et al. 2016b), any other 6n+2 depth basic
// blocks (ResNet-20 ... ResNet-110, ResNet-1202).
func resnetDepth(s *Spec, rest string) (string, error) {
	block := ""
	for _, b := range []string{"-basic", "-bottleneck"} {
		if r, ok := strings.CutSuffix(rest, b); ok {
			rest, block = r, b[1:]
		}
	}
	d, err := atoi(rest, "depth")
	if err != nil {
		return "", err
	}
	s.Depth = d
	basicOK := d >= 8 && (d-2)%6 == 0
	bottleOK := d >= 11 && (d-2)%9 == 0
	tail := strconv.Itoa(d)
	switch block {
	case "basic":
		if !basicOK {
			err = fmt.Errorf("depth %d is not 6n+2 (n >= 1), as basic blocks need", d)
		}
		if bottleOK && d >= 164 {
			tail += "-basic"
		}
	case "bottleneck":
		if !bottleOK {
			err = fmt.Errorf("depth %d is not 9n+2 (n >= 1), as bottleneck blocks need", d)
		}
		s.Bottleneck = true
		if d < 164 {
			tail += "-bottleneck"
		}
	default:
		switch {
		case bottleOK && d >= 164:
			s.Bottleneck = true
		case basicOK:
		case bottleOK:
			s.Bottleneck = true
			tail += "-bottleneck"
		default:
			err = fmt.Errorf("depth %d is neither 6n+2 (basic blocks: 20, 32, 44, 56, 110, 1202) nor 9n+2 (bottleneck blocks: 164, 1001)", d)
		}
	}
	return tail, err
}

// depthAnd reads "<d>-<what>" into s.Depth and returns the <what>.
func depthAnd(s *Spec, rest, what string) (string, error) {
	d, tail, ok := strings.Cut(rest, "-")
	if !ok || strings.Contains(tail, "-") {
		return "", fmt.Errorf("want depth and %s", what)
	}
	var err error
	s.Depth, err = atoi(d, "depth")
	return tail, err
}

// wideDepth is a wide ResNet's <d>-<k>[-d].
func wideDepth(s *Spec, rest string) (string, error) {
	r, drop := strings.CutSuffix(rest, "-d")
	k, err := depthAnd(s, r, "widening factor")
	if err != nil {
		return "", err
	}
	if s.Width, err = atoi(k, "widening factor"); err != nil {
		return "", err
	}
	if err := linear(6, 4, "n", "(e.g. 16, 22, 28, 40, 52)")(s.Depth); err != nil {
		return "", err
	}
	tail := fmt.Sprintf("%d-%d", s.Depth, s.Width)
	if drop {
		s.Dropout = 0.3
		tail += "-d"
	}
	return tail, nil
}

// grouped is a ResNeXt's <d>-<C>x<w>d, the depth checked by valid.
func grouped(valid func(int) error) rule {
	return func(s *Spec, rest string) (string, error) {
		width, err := depthAnd(s, rest, "<C>x<w>d")
		if err != nil {
			return "", err
		}
		cw, ok := strings.CutSuffix(width, "d")
		c, w, ok2 := strings.Cut(cw, "x")
		if !ok || !ok2 {
			return "", fmt.Errorf("width %q is not <C>x<w>d, e.g. 8x64d", width)
		}
		if s.Cardinality, err = atoi(c, "cardinality"); err != nil {
			return "", err
		}
		if s.GroupWidth, err = atoi(w, "group width"); err != nil {
			return "", err
		}
		s.Bottleneck = true
		return fmt.Sprintf("%d-%dx%dd", s.Depth, s.Cardinality, s.GroupWidth), valid(s.Depth)
	}
}

// Patterns lists every family's name syntax with examples, one per line.
func Patterns() []string {
	width := 0
	for _, f := range families {
		width = max(width, len(f.syntax))
	}
	out := make([]string, len(families))
	for i, f := range families {
		out[i] = fmt.Sprintf("%-*s  e.g. %s", width, f.syntax, f.examples)
	}
	return out
}

// Parse reads an architecture name (case-insensitive). Unknown names and
// impossible depths or widths give an error that says what is valid.
func Parse(name string) (Spec, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	for _, f := range families {
		rest, ok := strings.CutPrefix(n, string(f.Family)+"-")
		if !ok {
			continue
		}
		s := Spec{Family: f.Family, Dropout: f.dropout}
		tail, err := f.rule(&s, rest)
		if err != nil {
			return Spec{}, fmt.Errorf("architecture %q: %w (valid: %s, e.g. %s)", name, err, f.syntax, f.examples)
		}
		s.Name = string(f.Family) + "-" + tail
		return s, nil
	}
	return Spec{}, fmt.Errorf("unknown architecture %q; valid names:\n  %s", name, strings.Join(Patterns(), "\n  "))
}

// row is the spec's family's row of the table.
func (s Spec) row() family {
	for _, f := range families {
		if f.Family == s.Family {
			return f
		}
	}
	return family{}
}

// Residual reports whether the family has residual blocks (and so supports
// stochastic depth).
func (s Spec) Residual() bool { return s.row().residual }

// PreActivation reports whether the family is built of pre-activation
// blocks, which Config.AfterActivation converts before erasing.
func (s Spec) PreActivation() bool { return s.row().preact }

// ImageNet reports whether the family is an ImageNet model (224x224, 1000 classes).
func (s Spec) ImageNet() bool { return s.row().input == imagenetInput }

// defaults returns the family's default input and classes.
func (s Spec) defaults() (in [3]int, classes int) {
	f := s.row()
	return f.input, f.classes
}
