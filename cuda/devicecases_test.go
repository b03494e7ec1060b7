package cuda

import (
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"github.com/eraserelu/eraserelu/layers"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The networks of the device kernel checks (device_ops_test.go, -tags gpu:
// TestDeviceKernels, TestDeviceGraphSteps). They live here, outside the
// gpu build, so that TestDeviceCasesCoverBF16Kernels checks on the CPU that
// the next device run exercises every bf16 kernel.

type deviceCase struct {
	name  string
	build func(t *testing.T) (*graph.Graph, *graph.Program, []float32, []int)
	// low is how the step is lowered (the zero value: fp32, im2col +
	// GEMM); a BF16 case needs a device of compute capability 8.0 or newer.
	low Lowering
}

// lowering is the case's Lowering with its precision filled in.
func (tc deviceCase) lowering() Lowering {
	low := tc.low
	if low.Precision == "" {
		low.Precision = FP32
	}
	return low
}

// archCase is a case of an architecture of package arch, erased as asked.
func archCase(name string, cfg arch.Config, eraseAll bool, repl erase.Replacement, low Lowering) deviceCase {
	return deviceCase{name, func(t *testing.T) (*graph.Graph, *graph.Program, []float32, []int) {
		return buildWith(t, cfg, eraseAll, repl)
	}, low}
}

// probeCase is the bf16 probe network (bf16Probe) at batch.
func probeCase(name string, batch int, low Lowering) deviceCase {
	return deviceCase{name, func(t *testing.T) (*graph.Graph, *graph.Program, []float32, []int) {
		g, p := bf16Probe(t, tensor.Float32, batch)
		xs, ys := bindBatch(t, g, batch)
		return g, p, xs, ys
	}, low}
}

// precision is the case's lowering precision.
func (tc deviceCase) precision() Precision { return tc.lowering().Precision }

var deviceCases = []deviceCase{
	{"mlp-layernorm", func(t *testing.T) (*graph.Graph, *graph.Program, []float32, []int) { return lnMLP(t, 64) }, Lowering{}},
	archCase("mlp-12", arch.Config{Arch: "mlp-12", Batch: 32}, false, erase.Identity, Lowering{}),
	archCase("resnet-20-stochastic-depth", arch.Config{Arch: "resnet-20", Batch: 16, StochasticDepth: true}, false, erase.Identity, Lowering{}),
	// conv_direct on 32x32, 16x16 and 8x8 planes, forward and data
	// gradient; WRN-16-2's 128 channels at 8x8 take two channel tiles.
	archCase("resnet-20-direct", arch.Config{Arch: "resnet-20", Batch: 16}, false, erase.Identity, Lowering{DirectConv: true}),
	archCase("wrn-16-2-direct", arch.Config{Arch: "wrn-16-2", Batch: 8}, false, erase.Identity, Lowering{DirectConv: true}),
	// bf16 activation storage: every bf16 kernel runs in one of these
	// (TestDeviceCasesCoverBF16Kernels): ResNet-20 stores convolution,
	// batch-norm and block outputs in bf16; erased, its adds have no ReLU;
	// the pre-activation net reads bf16 block outputs in batch norm;
	// erased with PReLU, a bf16 block output meets an fp32 sum; stochastic
	// depth and dropout put fp32 operands and readers beside bf16 ones.
	archCase("resnet-20-bf16", arch.Config{Arch: "resnet-20", Batch: 16}, false, erase.Identity, Lowering{Precision: BF16}),
	archCase("resnet-20-erased-bf16", arch.Config{Arch: "resnet-20", Batch: 16}, true, erase.Identity, Lowering{Precision: BF16}),
	archCase("preact-resnet-20-bf16", arch.Config{Arch: "preact-resnet-20", Batch: 16}, false, erase.Identity, Lowering{Precision: BF16}),
	archCase("resnet-20-prelu-erased-bf16", arch.Config{Arch: "resnet-20", Batch: 16}, true, erase.PReLU, Lowering{Precision: BF16}),
	archCase("resnet-20-stochastic-depth-bf16", arch.Config{Arch: "resnet-20", Batch: 16, StochasticDepth: true}, false, erase.Identity, Lowering{Precision: BF16}),
	archCase("resnet-20-stochastic-depth-erased-bf16", arch.Config{Arch: "resnet-20", Batch: 16, StochasticDepth: true}, true, erase.Identity, Lowering{Precision: BF16}),
	archCase("wrn-16-1-d-bf16", arch.Config{Arch: "wrn-16-1-d", Batch: 16}, false, erase.Identity, Lowering{Precision: BF16}),
	probeCase("bf16-probe", 16, Lowering{Precision: BF16}),
}

// bf16Probe is a small network whose bf16 step stores its tensors in the
// combinations no network of arch produces: a convolution with a bias
// (added in fp32 before the one rounding) read by a convolution, a
// residual sum of a bf16
// operand read by max pooling (fp32 out: add_relu_fhf), and batch norms
// of linear layers' fp32 outputs whose outputs linear layers read (bf16
// out: bn_apply_relu_fh, bn_apply_fh). Input (N, 3, 8, 8), 10 classes.
func bf16Probe(t testing.TB, dt tensor.Dtype, batch int) (*graph.Graph, *graph.Program) {
	t.Helper()
	g := graph.New(dt, 5)
	x := g.NewInput("x", dt, batch, 3, 8, 8)
	y := g.NewInput("y", tensor.Int, batch)
	step := func(h *gorgonia.Node, err error) *gorgonia.Node {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	var logits *gorgonia.Node
	err := g.Within("probe", func() error {
		h := step(layers.ConvBNReLU(g, x, 8, 3, layers.Name("conv1")))
		c := step(layers.Conv(g, h, 8, 3, layers.Name("conv2"), layers.Bias(true)))
		b := step(layers.ConvBN(g, c, 8, 3, layers.Name("conv3")))
		s := step(layers.ReLU(step(layers.Add(b, h))))
		m := step(layers.MaxPool(s, 2, 2, 0))
		f := step(layers.BNReLU(g, step(layers.Dense(g, m, 32, layers.Name("fc1"), layers.Bias(false))), layers.Name("bn3")))
		f = step(layers.BatchNorm(g, step(layers.Dense(g, f, 32, layers.Name("fc2"), layers.Bias(false))), layers.Name("bn4")))
		logits = step(layers.Dense(g, f, 10, layers.Name("head")))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return g, compileClassifier(t, g, logits, y)
}

// compileClassifier ends g with a softmax cross-entropy of logits against
// labels y, names the logits and the loss as outputs, and compiles it.
func compileClassifier(t testing.TB, g *graph.Graph, logits, y *gorgonia.Node) *graph.Program {
	t.Helper()
	loss, _, err := ops.SoftmaxCrossEntropy(logits, y)
	if err != nil {
		t.Fatal(err)
	}
	g.SetOutput("logits", logits)
	g.SetOutput("loss", loss)
	p, err := graph.Compile(g, "loss")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDeviceCasesCoverBF16Kernels: the bf16 cases of the device checks
// run every bf16 kernel (the roundings and every bf16 variant), so one
// TestDeviceKernels run on a GPU compares each with the interpreter.
func TestDeviceCasesCoverBF16Kernels(t *testing.T) {
	want := map[string]bool{toBF16.name: true, im2colBF16.name: true}
	for k := range bf16Kernels {
		want[k] = true
	}
	for _, tc := range deviceCases {
		if tc.precision() != BF16 {
			continue
		}
		_, p, _, _ := tc.build(t)
		s, err := Lower(p, benchSGD, BF16)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range s.Instrs[:s.OptStart] {
			if want[in.Kernel] {
				delete(want, in.Kernel)
				t.Logf("%s: %s", tc.name, in.Kernel)
			}
		}
	}
	for k := range want {
		t.Errorf("no bf16 device case runs kernel %s", k)
	}
}
