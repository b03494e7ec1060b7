package erase_test

import (
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/train"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// gorgoniaResNet is a small ResNet written with Gorgonia's own calls only
// (Conv2d, BatchNorm, Rectify, Add, MaxPool2D, Mul) and no module
// annotations: a stem and four residual blocks ReLU(h + BN(conv(ReLU(BN(conv(h)))))),
// a max pool and a linear read-out with a squared-error loss against
// "target". Wrap adds what a Gorgonia graph lacks: which variables are
// trained (AddParam), the inputs and the loss (SetInput, SetOutput).
func gorgoniaResNet(batch int) *graph.Graph {
	eg := gorgonia.NewGraph()
	g := graph.Wrap(eg, tensor.Float64, 1)
	x := gorgonia.NewTensor(eg, tensor.Float64, 4, gorgonia.WithShape(batch, 3, 8, 8), gorgonia.WithName("x"))
	target := gorgonia.NewMatrix(eg, tensor.Float64, gorgonia.WithShape(batch, 4), gorgonia.WithName("target"))
	g.SetInput("x", x)
	g.SetInput("target", target)
	rng := rand.New(rand.NewPCG(1, 2))
	param := func(name string, shape ...int) *gorgonia.Node {
		fan := 1
		for _, d := range shape[1:] {
			fan *= d
		}
		v := make([]float64, tensor.Shape(shape).TotalSize())
		for i := range v {
			v[i] = rng.NormFloat64() / float64(fan)
		}
		w := gorgonia.NewTensor(eg, tensor.Float64, len(shape), gorgonia.WithShape(shape...), gorgonia.WithName(name),
			gorgonia.WithValue(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(v))))
		if _, err := g.AddParam(w, false); err != nil {
			panic(err)
		}
		return w
	}
	convBN := func(name string, h *gorgonia.Node) *gorgonia.Node {
		w := param(name, 4, h.Shape()[1], 3, 3)
		c := gorgonia.Must(gorgonia.Conv2d(h, w, tensor.Shape{3, 3}, []int{1, 1}, []int{1, 1}, []int{1, 1}))
		bn, scale, bias, _, err := gorgonia.BatchNorm(c, nil, nil, 0.9, 1e-5)
		if err != nil {
			panic(err)
		}
		for _, p := range []*gorgonia.Node{scale, bias} {
			if _, err := g.AddParam(p, true); err != nil {
				panic(err)
			}
		}
		return bn
	}
	h := gorgonia.Must(gorgonia.Rectify(convBN("stem", x)))
	for i := 1; i <= 4; i++ {
		r := gorgonia.Must(gorgonia.Rectify(convBN(fmt.Sprintf("block%d/conv1", i), h)))
		r = convBN(fmt.Sprintf("block%d/conv2", i), r)
		h = gorgonia.Must(gorgonia.Rectify(gorgonia.Must(gorgonia.Add(h, r))))
	}
	pooled := gorgonia.Must(gorgonia.MaxPool2D(h, tensor.Shape{2, 2}, []int{0, 0}, []int{2, 2}))
	flat := gorgonia.Must(gorgonia.Reshape(pooled, tensor.Shape{batch, 4 * 4 * 4}))
	logits := gorgonia.Must(gorgonia.Mul(flat, param("fc", 4*4*4, 4)))
	g.SetOutput("loss", gorgonia.Must(gorgonia.Mean(gorgonia.Must(gorgonia.Square(gorgonia.Must(gorgonia.Sub(logits, target)))))))
	return g
}

// bindRandom binds standard-normal values (seeded) to every input of g.
func bindRandom(g *graph.Graph, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 3))
	for _, name := range g.InputNames() {
		n, _ := g.Input(name)
		v := make([]float64, n.Shape().TotalSize())
		for i := range v {
			v[i] = rng.NormFloat64()
		}
		if err := gorgonia.Let(n, tensor.New(tensor.WithShape(n.Shape()...), tensor.WithBacking(v))); err != nil {
			panic(err)
		}
	}
}

// A ResNet written with plain Gorgonia calls, with no annotations: find
// its modules, erase the trailing ReLU of half of them, read the report
// (which names the nodes of the graph as built: a gorgonia.Rectify is its
// "⊙" node), and train the result with the project's executor.
func Example_gorgoniaResNet() {
	g := gorgoniaResNet(8)
	modules, err := graph.DiscoverModules(g)
	if err != nil {
		panic(err)
	}
	fmt.Println("discovered", len(modules), "modules")

	erased, report, err := erase.Apply(g, erase.Options{Proportion: 0.5})
	if err != nil {
		panic(err)
	}
	if err := report.Write(os.Stdout); err != nil {
		panic(err)
	}

	bindRandom(erased, 1)
	prog, err := graph.Compile(erased, "loss")
	if err != nil {
		panic(err)
	}
	defer prog.Close()
	sgd, err := train.NewSGD(erased.Params(), train.SGDOptions{Momentum: 0.9})
	if err != nil {
		panic(err)
	}
	var first float64
	for step := 0; step < 10; step++ {
		if err := prog.Train(); err != nil {
			panic(err)
		}
		if step == 0 {
			first = prog.Loss()
		}
		if err := sgd.Step(prog, 0.02); err != nil {
			panic(err)
		}
	}
	fmt.Println("loss fell:", prog.Loss() < first/2)
	// Output:
	// discovered 4 modules
	// MODULE     KIND      TRAILING RELU      ERASED
	// residual1  residual  ⊙ false(%2b, %2c)  yes
	// residual2  residual  ⊙ false(%48, %49)  no
	// residual3  residual  ⊙ false(%65, %66)  yes
	// residual4  residual  ⊙ false(%82, %83)  no
	//
	// 2 of 4 candidate modules erased; ReLUs 9 -> 7; params 38380 -> 38380
	// loss fell: true
}
