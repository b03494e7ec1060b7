package experiments

import (
	"fmt"
	"strconv"
	"strings"
)

// scaleSettings is how a training experiment shrinks at each scale.
type scaleSettings struct {
	seeds         int
	trainPerClass int // 0: all
	testPerClass  int
	overrides     map[string]string
}

func settings(s Scale, smoke, quick, paper scaleSettings) (scaleSettings, error) {
	switch s {
	case Smoke:
		return smoke, nil
	case Quick:
		return quick, nil
	case Paper:
		return paper, nil
	}
	return scaleSettings{}, fmt.Errorf("unknown scale %q", s)
}

// smokeOverrides make a run take seconds: one epoch of small batches.
var smokeOverrides = map[string]string{"epochs": "1", "iterations": "0", "batch_size": "16", "milestones": "", "warmup_iters": "0"}

func withOverrides(base map[string]string, extra map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// expand makes one job per seed of a configuration.
func expand(j Job, st scaleSettings) []Job {
	var out []Job
	for s := 1; s <= st.seeds; s++ {
		jj := j
		jj.Seed = uint64(s)
		jj.ID = fmt.Sprintf("%s-s%d", j.Group, s)
		jj.TrainPerClass, jj.TestPerClass = st.trainPerClass, st.testPerClass
		jj.Overrides = withOverrides(st.overrides, j.Overrides)
		out = append(out, jj)
	}
	return out
}

// proportionSweep is Figure 3(a)-(c): one net, EraseReLU at each proportion.
func proportionSweep(name, title string, archs map[Scale]string, datasets []string, recipe string, props map[Scale][]float64, st func(Scale) (scaleSettings, error)) *Experiment {
	return &Experiment{
		Name:  name,
		Title: title,
		Jobs: func(s Scale) ([]Job, error) {
			set, err := st(s)
			if err != nil {
				return nil, err
			}
			var jobs []Job
			for _, ds := range datasets {
				for _, p := range props[s] {
					j := Job{Group: fmt.Sprintf("%s-p%s", ds, strconv.FormatFloat(p, 'f', -1, 64)), Arch: archs[s], Dataset: ds, Erase: p, Recipe: recipe}
					jobs = append(jobs, expand(j, set)...)
				}
			}
			return jobs, nil
		},
		Report: func(dir string, rs []JobResult) (string, error) { return proportionReport(title, dir, name, rs) },
	}
}

var fig3Props = map[Scale][]float64{
	Smoke: {0, 0.5},
	Quick: {0, 0.2, 0.4, 0.6, 0.8},
	Paper: {0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9},
}

func cifarSweepSettings(s Scale) (scaleSettings, error) {
	return settings(s,
		scaleSettings{seeds: 1, trainPerClass: 4, testPerClass: 2, overrides: smokeOverrides},
		scaleSettings{seeds: 1, trainPerClass: 500, testPerClass: 200, overrides: map[string]string{"epochs": "4", "iterations": "0", "milestone_unit": "epoch", "milestones": "3", "warmup_iters": "0"}},
		scaleSettings{seeds: 3})
}

func fig3a() *Experiment {
	return proportionSweep("fig3a", "Figure 3(a): VGG-style 31-layer net, accuracy vs EraseReLU proportion (CIFAR-10/100)",
		map[Scale]string{Smoke: "fig3-vgg-4", Quick: "fig3-vgg-31", Paper: "fig3-vgg-31"},
		[]string{"cifar10", "cifar100"}, "he-resnet", fig3Props, cifarSweepSettings)
}

func fig3b() *Experiment {
	return proportionSweep("fig3b", "Figure 3(b): residual-style 31-layer net, accuracy vs EraseReLU proportion (CIFAR-10/100)",
		map[Scale]string{Smoke: "fig3-res-4", Quick: "fig3-res-31", Paper: "fig3-res-31"},
		[]string{"cifar10", "cifar100"}, "he-resnet", fig3Props, cifarSweepSettings)
}

// Fig3cSettings is the MLP sweep's size at each scale; quick is the
// README's main job (about five minutes on 2 cores).
func fig3cSettings(s Scale) (scaleSettings, error) {
	return settings(s,
		scaleSettings{seeds: 1, trainPerClass: 8, testPerClass: 4, overrides: smokeOverrides},
		scaleSettings{seeds: 1, trainPerClass: 1000, testPerClass: 0, overrides: map[string]string{"epochs": "3", "milestones": "2"}},
		scaleSettings{seeds: 3})
}

func fig3c() *Experiment {
	return proportionSweep("fig3c", "Figure 3(c): 12-layer MLP on MNIST, accuracy vs EraseReLU proportion",
		map[Scale]string{Smoke: "mlp-3", Quick: "mlp-12", Paper: "mlp-12"},
		[]string{"mnist"}, "mlp-mnist",
		map[Scale][]float64{Smoke: {0, 0.5}, Quick: {0, 0.2, 0.4, 0.6, 0.8}, Paper: {0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}},
		fig3cSettings)
}

func fig3d() *Experiment {
	depths := map[Scale][]int{Smoke: {4, 7}, Quick: {7, 13, 19, 31}, Paper: {7, 13, 19, 25, 31, 37, 43}}
	return &Experiment{
		Name:  "fig3d",
		Title: "Figure 3(d): VGG-style nets of increasing depth on CIFAR-100, with and without EraseReLU (20%)",
		Jobs: func(s Scale) ([]Job, error) {
			set, err := cifarSweepSettings(s)
			if err != nil {
				return nil, err
			}
			var jobs []Job
			for _, d := range depths[s] {
				for _, p := range []float64{0, 0.2} {
					j := Job{Group: fmt.Sprintf("d%d-p%s", d, strconv.FormatFloat(p, 'f', -1, 64)), Arch: fmt.Sprintf("fig3-vgg-%d", d), Dataset: "cifar100", Erase: p, Recipe: "he-resnet"}
					jobs = append(jobs, expand(j, set)...)
				}
			}
			return jobs, nil
		},
		Report: func(dir string, rs []JobResult) (string, error) { return depthReport(dir, rs) },
	}
}

// table1Variant is one column of Table 1.
type table1Variant struct {
	name                  string
	erase                 float64
	location, replacement string
	everyReLU             bool // the stem's ReLU too: "all ReLU layers"
	sdr, long             bool // stochastic depth; the 500-epoch SDR schedule (the dagger)
}

var table1Variants = []table1Variant{
	{name: "ResNet"},
	{name: "PReLU-all", erase: 1, location: "all", replacement: "prelu", everyReLU: true},
	{name: "PReLU-sum", erase: 1, location: "last", replacement: "prelu"},
	{name: "ER*", erase: 1, location: "first"},
	{name: "ER", erase: 1, location: "last"},
	{name: "ER†", erase: 1, location: "last", long: true},
	{name: "SDR", sdr: true, long: true},
	{name: "ER†+SDR", erase: 1, location: "last", sdr: true, long: true},
}

func table1() *Experiment {
	depths := map[Scale][]int{Smoke: {8}, Quick: {20}, Paper: {20, 56, 110}}
	return &Experiment{
		Name:  "table1",
		Title: "Table 1: ResNet variants on CIFAR-100 (train and test error, mean ± std)",
		Jobs: func(s Scale) ([]Job, error) {
			set, err := settings(s,
				scaleSettings{seeds: 1, trainPerClass: 2, testPerClass: 1, overrides: smokeOverrides},
				scaleSettings{seeds: 1, trainPerClass: 500, testPerClass: 100, overrides: map[string]string{"epochs": "10", "iterations": "0", "milestone_unit": "epoch", "milestones": "7", "warmup_iters": "0"}},
				scaleSettings{seeds: 5})
			if err != nil {
				return nil, err
			}
			var jobs []Job
			for _, d := range depths[s] {
				for _, v := range table1Variants {
					recipe := "he-resnet"
					if d == 110 {
						recipe = "he-resnet-110"
					}
					if v.long {
						recipe = "stochastic-depth"
					}
					j := Job{Group: fmt.Sprintf("resnet%d-%s", d, v.name), Arch: fmt.Sprintf("resnet-%d", d), Dataset: "cifar100",
						Erase: v.erase, Location: v.location, Replacement: v.replacement, EveryReLU: v.everyReLU, StochasticDepth: v.sdr, Recipe: recipe}
					jobs = append(jobs, expand(j, set)...)
				}
			}
			return jobs, nil
		},
		Report: table1Report,
	}
}

// table2Recipe is the training recipe of an architecture's original paper.
func table2Recipe(archName, dataset string) string {
	switch {
	case archName == "resnet-110" || archName == "resnet-1202":
		return "he-resnet-110"
	case len(archName) > 7 && archName[:7] == "preact-":
		return "preact-resnet"
	case len(archName) > 4 && archName[:4] == "wrn-" && dataset == "svhn":
		return "wrn-svhn"
	case len(archName) > 4 && archName[:4] == "wrn-", len(archName) > 10 && archName[:10] == "inception-":
		return "wrn"
	case len(archName) > 8 && archName[:8] == "resnext-":
		return "resnext"
	}
	return "he-resnet"
}

func table2() *Experiment {
	// quick runs one small member of each family.
	quickArchs := []struct{ family, arch string }{
		{"ResNet", "resnet-20"}, {"Pre-act ResNet", "preact-resnet-20"}, {"Wide ResNet", "wrn-16-2"},
		{"ResNeXt", "resnext-11-2x16d"}, {"Inception-V2", "inception-v2-3"},
	}
	return &Experiment{
		Name:  "table2",
		Title: "Table 2: test error on CIFAR-10, CIFAR-100 and SVHN, original vs EraseReLU",
		Jobs: func(s Scale) ([]Job, error) {
			set, err := settings(s,
				// Smoke: 4 images per class leave 3 after the selection's
				// validation split, enough for one batch of 16.
				scaleSettings{seeds: 1, trainPerClass: 4, testPerClass: 1, overrides: smokeOverrides},
				scaleSettings{seeds: 1, trainPerClass: 200, testPerClass: 50, overrides: map[string]string{"epochs": "3", "iterations": "0", "milestones": "", "warmup_iters": "0"}},
				scaleSettings{seeds: 5})
			if err != nil {
				return nil, err
			}
			type cell struct{ arch, dataset string }
			var cells []cell
			if s == Paper {
				for _, row := range Table2 {
					for _, ds := range []string{"cifar10", "cifar100", "svhn"} {
						if _, ok := row.Original[ds]; ok {
							cells = append(cells, cell{row.Arch, ds})
						}
					}
				}
			} else {
				for _, a := range quickArchs {
					if s == Smoke && a.family != "ResNet" && a.family != "Inception-V2" {
						continue
					}
					cells = append(cells, cell{a.arch, "cifar10"})
				}
			}
			candidates := DefaultCandidates
			if s == Smoke {
				candidates = []float64{0.5, 1}
			}
			var jobs []Job
			for _, c := range cells {
				preact := strings.HasPrefix(c.arch, "preact-") || strings.HasPrefix(c.arch, "wrn-")
				for _, erased := range []bool{false, true} {
					j := Job{Group: c.arch + "-" + c.dataset + "-original", Arch: c.arch, Dataset: c.dataset, Recipe: table2Recipe(c.arch, c.dataset)}
					if strings.HasPrefix(c.arch, "wrn-") && strings.HasSuffix(c.arch, "-d") && c.dataset == "svhn" {
						j.Dropout = 0.4 // Zagoruyko & Komodakis's SVHN setting (recipe wrn-svhn)
					}
					if erased {
						// The paper chose the proportion on validation sets
						// (section 4.2): so do we, per architecture and data set.
						j.Group = c.arch + "-" + c.dataset + "-erased"
						j.AfterActivation = preact
						j.Selection = &Selection{Candidates: candidates, Validation: DefaultValidation, Seed: 1}
					}
					jobs = append(jobs, expand(j, set)...)
				}
			}
			return jobs, nil
		},
		Report: table2Report,
	}
}

func fig5() *Experiment {
	archs := map[Scale][]string{Smoke: {"resnet-8"}, Quick: {"resnet-20"}, Paper: {"resnet-110", "resnet-164"}}
	return &Experiment{
		Name:  "fig5",
		Title: "Figure 5: training curves of ResNet-110 and ResNet-164 on CIFAR-100, with and without EraseReLU",
		Jobs: func(s Scale) ([]Job, error) {
			set, err := settings(s,
				scaleSettings{seeds: 1, trainPerClass: 2, testPerClass: 1, overrides: withOverrides(smokeOverrides, map[string]string{"epochs": "2"})},
				scaleSettings{seeds: 1, trainPerClass: 500, testPerClass: 100, overrides: map[string]string{"epochs": "10", "iterations": "0", "milestone_unit": "epoch", "milestones": "7", "warmup_iters": "0"}},
				scaleSettings{seeds: 1})
			if err != nil {
				return nil, err
			}
			var jobs []Job
			for _, a := range archs[s] {
				for _, p := range []float64{0, 1} {
					recipe := "he-resnet"
					if a == "resnet-110" || a == "resnet-164" {
						recipe = "he-resnet-110"
					}
					jobs = append(jobs, expand(Job{Group: fmt.Sprintf("%s-p%g", a, p), Arch: a, Dataset: "cifar100", Erase: p, Recipe: recipe}, set)...)
				}
			}
			return jobs, nil
		},
		Report: fig5Report,
	}
}

func table3() *Experiment {
	return &Experiment{
		Name:  "table3",
		Title: "Table 3: ResNet-50 on ImageNet subsets (10%, 20%, 30%), with and without EraseReLU",
		Jobs: func(s Scale) ([]Job, error) {
			set, err := settings(s,
				scaleSettings{seeds: 1, trainPerClass: 1, testPerClass: 1, overrides: withOverrides(smokeOverrides, map[string]string{"batch_size": "4"})},
				scaleSettings{seeds: 1, overrides: map[string]string{"epochs": "2", "milestones": ""}},
				scaleSettings{seeds: 1})
			if err != nil {
				return nil, err
			}
			var jobs []Job
			for _, frac := range []string{"10%", "20%", "30%"} {
				f, _ := strconv.ParseFloat(frac[:2], 64)
				for _, erased := range []bool{false, true} {
					j := Job{Group: "resnet50-" + frac[:2] + "-original", Arch: "imagenet-resnet-50", Dataset: "imagenet", Recipe: "imagenet", Fraction: f / 100}
					if erased {
						j.Group, j.Erase = "resnet50-"+frac[:2]+"-erased", Table3Proportion[frac]
					}
					jobs = append(jobs, expand(j, set)...)
				}
			}
			return jobs, nil
		},
		Report: table3Report,
	}
}

// fig6Panel is one subfigure of Figure 6: a network with and without
// EraseReLU on ImageNet-10%.
type fig6Panel struct {
	panel, arch string
	erase       float64
}

// fig6 is Figure 6: top-1/top-5 validation accuracy curves on ImageNet-10%.
// The paper's caption says ResNet-101 for (a), its text ResNet-50; we follow
// the caption, since Table 3 already trains ResNet-50 on ImageNet-10%.
func fig6() *Experiment {
	panels := map[Scale][]fig6Panel{
		// Smoke: the smallest ImageNet net for both panels (ResNeXt builds are
		// covered by arch's tests); the panels' proportions are the paper's.
		Smoke: {{"a", "imagenet-resnet-18", 1}, {"b", "imagenet-resnet-18", 0.5}},
		Quick: {{"a", "imagenet-resnet-101", 1}, {"b", "imagenet-resnext-152-32x4d", 0.5}},
		Paper: {{"a", "imagenet-resnet-101", 1}, {"b", "imagenet-resnext-152-32x4d", 0.5}},
	}
	return &Experiment{
		Name:  "fig6",
		Title: "Figure 6: ResNet-101 (100%) and ResNeXt-152 32x4d (50%) on ImageNet-10%, top-1/top-5 accuracy curves with and without EraseReLU",
		Jobs: func(s Scale) ([]Job, error) {
			set, err := settings(s,
				scaleSettings{seeds: 1, overrides: withOverrides(smokeOverrides, map[string]string{"epochs": "2", "batch_size": "2"})},
				scaleSettings{seeds: 1, overrides: map[string]string{"epochs": "2", "milestones": ""}},
				scaleSettings{seeds: 1})
			if err != nil {
				return nil, err
			}
			var jobs []Job
			for _, p := range panels[s] {
				for _, erase := range []float64{0, p.erase} {
					g := fmt.Sprintf("%s-%s-p%s", p.panel, p.arch, strconv.FormatFloat(100*erase, 'f', -1, 64))
					jobs = append(jobs, expand(Job{Group: g, Arch: p.arch, Dataset: "imagenet", Erase: erase, Recipe: "imagenet", Fraction: 0.1}, set)...)
				}
			}
			return jobs, nil
		},
		Report: fig6Report,
	}
}

func table4() *Experiment {
	return &Experiment{
		Name:  "table4",
		Title: "Table 4: ResNet-152/200 and Pre-act ResNet-200 on full ImageNet, with and without EraseReLU (50%)",
		Jobs: func(s Scale) ([]Job, error) {
			set, err := settings(s,
				scaleSettings{seeds: 1, trainPerClass: 1, testPerClass: 1, overrides: withOverrides(smokeOverrides, map[string]string{"batch_size": "2"})},
				scaleSettings{seeds: 1, overrides: map[string]string{"epochs": "1", "milestones": ""}},
				scaleSettings{seeds: 1})
			if err != nil {
				return nil, err
			}
			var jobs []Job
			for _, c := range []struct {
				group, arch string
				erase       float64
			}{
				{"ResNet-152", "imagenet-resnet-152", 0}, {"ResNet-152 with ER", "imagenet-resnet-152", 0.5},
				{"ResNet-200", "imagenet-resnet-200", 0}, {"Pre-act ResNet-200", "imagenet-preact-resnet-200", 0},
				{"ResNet-200 with ER", "imagenet-resnet-200", 0.5},
			} {
				jobs = append(jobs, expand(Job{Group: c.group, Arch: c.arch, Dataset: "imagenet", Erase: c.erase, Recipe: "imagenet"}, set)...)
			}
			for i := range jobs {
				jobs[i].ID = sanitize(jobs[i].ID)
			}
			return jobs, nil
		},
		Report: table4Report,
	}
}

// sanitize makes a group name usable as a directory name.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}
