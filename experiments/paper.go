package experiments

// The paper's reported numbers, transcribed from Dong et al. (EraseReLU),
// printed beside ours in every report. Errors are percentages; NaN-free:
// a value the paper does not report is absent from the map.

// PaperValue is a reported error with its standard deviation (0 if none).
type PaperValue struct{ Mean, Std float64 }

// Table1Variants are the columns of Table 1 in the paper's order.
var Table1Variants = []string{"ResNet", "PReLU-all", "PReLU-sum", "ER*", "ER", "ER†", "SDR", "ER†+SDR"}

// Table1 holds CIFAR-100 train and test error of ResNet-20/56/110 variants
// (5 runs, mean ± std): Table1[split][depth][variant].
var Table1 = map[string]map[int]map[string]PaperValue{
	"train": {
		20:  {"ResNet": {12.46, 0.32}, "PReLU-all": {11.18, 0.17}, "PReLU-sum": {12.16, 0.18}, "ER*": {21.34, 0.34}, "ER": {12.47, 0.21}, "ER†": {5.38, 0.20}, "SDR": {22.51, 0.30}, "ER†+SDR": {24.09, 0.09}},
		56:  {"ResNet": {2.38, 0.22}, "PReLU-all": {1.70, 0.24}, "PReLU-sum": {0.89, 0.13}, "ER*": {13.28, 0.79}, "ER": {0.86, 0.08}, "ER†": {0.09, 0.02}, "SDR": {4.91, 0.12}, "ER†+SDR": {4.95, 0.03}},
		110: {"ResNet": {0.34, 0.05}},
	},
	"test": {
		20:  {"ResNet": {32.85, 0.48}, "PReLU-all": {33.40, 0.59}, "PReLU-sum": {32.95, 0.30}, "ER*": {35.15, 0.36}, "ER": {32.29, 0.33}, "ER†": {31.82, 0.30}, "SDR": {32.87, 0.15}, "ER†+SDR": {33.24, 0.36}},
		56:  {"ResNet": {30.86, 0.81}, "PReLU-all": {30.60, 0.84}, "PReLU-sum": {29.94, 0.73}, "ER*": {33.64, 0.33}, "ER": {28.56, 0.17}, "ER†": {27.23, 0.01}, "SDR": {25.60, 0.36}, "ER†+SDR": {25.01, 0.22}},
		110: {"ResNet": {28.21, 0.46}, "PReLU-all": {28.20, 0.98}, "PReLU-sum": {27.45, 0.46}, "ER*": {33.55, 0.44}, "ER": {26.05, 0.44}, "ER†": {25.01, 0.09}, "SDR": {24.01, 0.14}, "ER†+SDR": {22.89, 0.17}},
	},
}

// Table2Row is one architecture setting of Table 2: original and EraseReLU
// test error on each data set.
type Table2Row struct {
	Family, Setting string
	// Arch is this toolkit's architecture name for the row.
	Arch string
	// Original and Erased map a data set (cifar10, cifar100, svhn) to the error.
	Original, Erased map[string]PaperValue
}

// Table2 is the paper's Table 2 (CIFAR-10, CIFAR-100, SVHN test error).
var Table2 = []Table2Row{
	{"ResNet", "56", "resnet-56", map[string]PaperValue{"cifar10": {6.97, 0}, "cifar100": {30.60, 0}}, map[string]PaperValue{"cifar10": {6.23, 0.21}, "cifar100": {28.56, 0.17}}},
	{"ResNet", "110", "resnet-110", map[string]PaperValue{"cifar10": {6.43, 0}, "cifar100": {28.21, 0}}, map[string]PaperValue{"cifar10": {5.78, 0.10}, "cifar100": {26.05, 0.44}}},
	{"ResNet", "1202", "resnet-1202", map[string]PaperValue{"cifar10": {7.93, 0}}, map[string]PaperValue{"cifar10": {4.96, 0}}},
	{"Pre-act ResNet", "62", "preact-resnet-62", map[string]PaperValue{"cifar10": {6.98, 0}, "cifar100": {29.44, 0}}, map[string]PaperValue{"cifar10": {6.07, 0.06}, "cifar100": {27.54, 0.04}}},
	{"Pre-act ResNet", "110", "preact-resnet-110", map[string]PaperValue{"cifar10": {6.37, 0}, "cifar100": {27.20, 0}}, map[string]PaperValue{"cifar10": {5.72, 0.04}, "cifar100": {25.76, 0.07}}},
	{"Pre-act ResNet", "164", "preact-resnet-164", map[string]PaperValue{"cifar10": {5.46, 0}, "cifar100": {24.33, 0}}, map[string]PaperValue{"cifar10": {4.65, 0}, "cifar100": {22.41, 0}}},
	{"Pre-act ResNet", "1001", "preact-resnet-1001", map[string]PaperValue{"cifar10": {4.92, 0}, "cifar100": {22.71, 0}}, map[string]PaperValue{"cifar10": {4.10, 0}, "cifar100": {20.63, 0}}},
	{"Wide ResNet", "40-4", "wrn-40-4", map[string]PaperValue{"cifar10": {4.97, 0}, "cifar100": {22.89, 0}}, map[string]PaperValue{"cifar10": {4.27, 0}, "cifar100": {20.07, 0}}},
	{"Wide ResNet", "28-10", "wrn-28-10", map[string]PaperValue{"cifar10": {4.00, 0}, "cifar100": {19.25, 0}}, map[string]PaperValue{"cifar10": {3.78, 0}, "cifar100": {19.10, 0}}},
	{"Wide ResNet", "28-10-D", "wrn-28-10-d", map[string]PaperValue{"cifar10": {3.89, 0}, "cifar100": {18.85, 0}}, map[string]PaperValue{"cifar10": {3.88, 0}, "cifar100": {18.60, 0}}},
	{"Wide ResNet", "52-1", "wrn-52-1", map[string]PaperValue{"cifar10": {6.43, 0}, "cifar100": {29.89, 0}, "svhn": {2.08, 0}}, map[string]PaperValue{"cifar10": {5.37, 0}, "cifar100": {26.45, 0}, "svhn": {1.87, 0}}},
	{"Wide ResNet", "52-1-D", "wrn-52-1-d", map[string]PaperValue{"cifar10": {6.28, 0}, "cifar100": {29.78, 0}, "svhn": {1.70, 0}}, map[string]PaperValue{"cifar10": {5.65, 0}, "cifar100": {25.00, 0}, "svhn": {1.54, 0}}},
	{"Wide ResNet", "52-10", "wrn-52-10", map[string]PaperValue{"cifar10": {3.69, 0}, "cifar100": {19.19, 0}, "svhn": {1.81, 0}}, map[string]PaperValue{"cifar10": {3.69, 0}, "cifar100": {18.19, 0}, "svhn": {1.64, 0}}},
	{"ResNeXt", "29-8x64", "resnext-29-8x64d", map[string]PaperValue{"cifar10": {3.65, 0}, "cifar100": {17.77, 0}}, map[string]PaperValue{"cifar10": {3.57, 0}, "cifar100": {17.23, 0}}},
	{"ResNeXt", "29-16x64", "resnext-29-16x64d", map[string]PaperValue{"cifar10": {3.58, 0}, "cifar100": {17.31, 0}}, map[string]PaperValue{"cifar10": {3.56, 0}, "cifar100": {16.53, 0}}},
	{"Inception-V2", "30", "inception-v2-30", map[string]PaperValue{"cifar10": {5.45, 0}, "cifar100": {28.29, 0}}, map[string]PaperValue{"cifar10": {5.29, 0}, "cifar100": {24.34, 0}}},
}

// Table3 is ResNet-50 top-1/top-5 error on ImageNet subsets, without and
// with EraseReLU (proportion 100% on 10% and 20%, 25% on 30%):
// Table3[variant][metric][fraction].
var Table3 = map[string]map[string]map[string]float64{
	"original": {"top1": {"10%": 47.60, "20%": 36.76, "30%": 31.11}, "top5": {"10%": 23.68, "20%": 15.65, "30%": 11.65}},
	"erased":   {"top1": {"10%": 46.18, "20%": 36.42, "30%": 31.10}, "top5": {"10%": 23.20, "20%": 14.99, "30%": 11.64}},
}

// Table3Proportion is the proportion the paper used per subset.
var Table3Proportion = map[string]float64{"10%": 1, "20%": 1, "30%": 0.25}

// Table4 is top-1/top-5 error on the full ImageNet validation set.
var Table4 = []struct {
	Model      string
	Top1, Top5 float64
}{
	{"ResNet-152", 22.2, 6.2},
	{"ResNet-152 with ER", 21.6, 5.8},
	{"ResNet-200", 21.8, 6.1},
	{"Pre-act ResNet-200", 21.7, 5.8},
	{"ResNet-200 with ER", 21.4, 5.8},
}
