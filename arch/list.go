package arch

import (
	"fmt"
	"strings"
)

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

// List returns the architectures the paper trains, with their default input
// and classes. Every family accepts other depths and widths too (Patterns).
func List() []Info {
	var out []Info
	add := func(name, desc string) {
		s, err := Parse(name)
		if err != nil {
			panic(err)
		}
		in, classes := s.defaults()
		out = append(out, Info{Name: s.Name, Family: s.Family, Description: desc, Input: in, Classes: classes})
	}
	add("fig3-vgg-31", "Figure 3(a,d): VGG-style, 3x3 conv + 3 stages of 10 conv-BN-ReLU modules (16/32/64)")
	add("fig3-res-31", "Figure 3(b): residual-style, 3x3 conv + 3 stages of 10 ReLU(x + BN(conv(x))) modules")
	add("mlp-12", "Figure 3(c): MNIST MLP, 11 x (FC 1000, BN, ReLU, dropout) + FC 10")
	add("scalar-300", "Figure 4: f: R -> R, FC 200 + N residual modules ReLU(h + LN(FC(h))) + FC 1")
	for _, d := range []int{20, 32, 44, 56, 110, 1202} {
		add(fmt.Sprintf("resnet-%d", d), fmt.Sprintf("CIFAR ResNet-%d (He 2016), basic blocks, option-A shortcuts", d))
	}
	add("resnet-164", "CIFAR ResNet-164 (He 2016b), bottleneck blocks, projection shortcuts")
	for _, d := range []int{62, 110, 164, 1001} {
		block := "basic"
		if d >= 164 {
			block = "bottleneck"
		}
		add(fmt.Sprintf("preact-resnet-%d", d), fmt.Sprintf("CIFAR pre-activation ResNet-%d (He 2016b), %s blocks", d, block))
	}
	for _, w := range []string{"40-4", "28-10", "28-10-d", "52-1", "52-1-d", "52-10"} {
		desc := "Wide ResNet WRN-" + strings.TrimSuffix(w, "-d") + " (Zagoruyko & Komodakis 2016), pre-activation"
		if strings.HasSuffix(w, "-d") {
			desc += ", dropout 0.3 between convs"
		}
		add("wrn-"+w, desc)
	}
	add("resnext-29-8x64d", "ResNeXt-29 8x64d for CIFAR (Xie 2017), grouped bottlenecks 256/512/1024")
	add("resnext-29-16x64d", "ResNeXt-29 16x64d for CIFAR (Xie 2017), grouped bottlenecks 256/512/1024")
	add("inception-v2-30", "Inception-V2 for CIFAR (section 4.2), 64-ch conv + 3 stages of 10 modules, branches 1:8:2:1")
	for _, d := range []int{50, 101, 152, 200} {
		add(fmt.Sprintf("imagenet-resnet-%d", d), fmt.Sprintf("ImageNet ResNet-%d (He 2016), bottleneck blocks", d))
	}
	add("imagenet-preact-resnet-200", "ImageNet pre-activation ResNet-200 (He 2016b)")
	add("imagenet-resnext-152-32x4d", "ImageNet ResNeXt-152 32x4d (Xie 2017)")
	return out
}
