package erase_test

import (
	"fmt"

	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// A network built with plain Gorgonia calls (gorgonia.Rectify is its ReLU):
// mark its modules by their output nodes, erase half of them, and train
// the result. Example_gorgoniaResNet finds the modules instead.
func Example_plainGorgonia() {
	eg := gorgonia.NewGraph()
	x := gorgonia.NewMatrix(eg, tensor.Float64, gorgonia.WithShape(4, 8), gorgonia.WithName("x"),
		gorgonia.WithInit(gorgonia.Uniform(-1, 1)))
	g := graph.Wrap(eg, tensor.Float64, 1)
	h := x
	for i := 1; i <= 4; i++ {
		w := gorgonia.NewMatrix(eg, tensor.Float64, gorgonia.WithShape(8, 8),
			gorgonia.WithName(fmt.Sprintf("w%d", i)), gorgonia.WithInit(gorgonia.GlorotU(1)))
		if _, err := g.AddParam(w, false); err != nil {
			panic(err)
		}
		in := h
		h = gorgonia.Must(gorgonia.Rectify(gorgonia.Must(gorgonia.Add(in, gorgonia.Must(gorgonia.Mul(in, w))))))
		if err := g.MarkModule(fmt.Sprintf("layer%d", i), graph.Residual, h, in); err != nil {
			panic(err)
		}
	}
	g.SetOutput("loss", gorgonia.Must(gorgonia.Mean(gorgonia.Must(gorgonia.Square(h)))))

	erased, report, err := erase.Apply(g, erase.Options{Proportion: 0.5})
	if err != nil {
		panic(err)
	}
	fmt.Println("erased:", report.Erased)
	fmt.Println("ReLUs:", report.ReLUsBefore, "->", report.ReLUsAfter)

	prog, err := graph.Compile(erased, "loss")
	if err != nil {
		panic(err)
	}
	defer prog.Close()
	first := 0.0
	for step := 0; step < 50; step++ {
		if err := prog.Train(); err != nil {
			panic(err)
		}
		if step == 0 {
			first = prog.Loss()
		}
		for _, p := range erased.Params() {
			grad, _ := prog.Grad(p)
			w := p.Node.Value().Data().([]float64)
			for i, d := range grad.Data().([]float64) {
				w[i] -= 0.05 * d
			}
		}
	}
	fmt.Println("loss fell:", prog.Loss() < first)
	// Output:
	// erased: [layer1 layer3]
	// ReLUs: 4 -> 2
	// loss fell: true
}
