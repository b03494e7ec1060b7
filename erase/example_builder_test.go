package erase_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"github.com/eraserelu/eraserelu/layers"
	"github.com/eraserelu/eraserelu/train"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// A residual network built with the builder, half of its modules erased,
// compiled and trained for a few SGD steps on one random batch.
func Example_residualNetwork() {
	g := graph.New(tensor.Float32, 1)
	x := g.NewInput("x", tensor.Float32, 8, 3, 8, 8)
	y := g.NewInput("y", tensor.Int, 8)
	h := gorgonia.Must(layers.ConvBNReLU(g, x, 16, 3))
	for i := 1; i <= 4; i++ {
		h = gorgonia.Must(g.Build(fmt.Sprintf("block%d", i), graph.Residual, func() (*gorgonia.Node, error) {
			r := gorgonia.Must(layers.ConvBNReLU(g, h, 16, 3))
			r = gorgonia.Must(layers.ConvBN(g, r, 16, 3))
			return ops.ReLU(gorgonia.Must(ops.Add(h, r)))
		}))
	}
	logits := gorgonia.Must(layers.Dense(g, gorgonia.Must(ops.GlobalAvgPool(h)), 10))
	loss, _, _ := ops.SoftmaxCrossEntropy(logits, y)
	g.SetOutput("loss", loss)

	erased, report, _ := erase.Apply(g, erase.Options{Proportion: 0.5})
	fmt.Println("erased:", report.Erased, "ReLUs:", report.ReLUsBefore, "->", report.ReLUsAfter)

	prog, _ := graph.Compile(erased, "loss")
	rng := rand.New(rand.NewPCG(1, 2))
	images := make([]float32, 8*3*8*8)
	for i := range images {
		images[i] = float32(rng.NormFloat64())
	}
	ex, _ := erased.Input("x")
	ey, _ := erased.Input("y")
	_ = gorgonia.Let(ex, tensor.New(tensor.WithShape(8, 3, 8, 8), tensor.WithBacking(images)))
	_ = gorgonia.Let(ey, tensor.New(tensor.WithShape(8), tensor.WithBacking([]int{0, 1, 2, 3, 4, 5, 6, 7})))
	sgd, _ := train.NewSGD(erased.Params(), train.SGDOptions{Momentum: 0.9})
	var first float64
	for step := 0; step < 20; step++ {
		if err := prog.Train(); err != nil {
			panic(err)
		}
		if step == 0 {
			first = prog.Loss()
		}
		_ = sgd.Step(prog, 0.05)
	}
	fmt.Println("loss fell:", prog.Loss() < first/2)
	// Output:
	// erased: [block1 block3] ReLUs: 9 -> 7
	// loss fell: true
}
