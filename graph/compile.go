package graph

import (
	"fmt"

	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Program is a graph compiled for training and inference.
//
// The training machine runs the forward pass, the loss and the backward
// pass (gradients of every parameter); the inference machine runs only the
// ancestors of the named outputs. Both switch the graph's mode before they
// run, so batch norm and dropout behave as they should in each. Outputs and
// gradients are pinned: copied at the end of their computation into tensors
// owned by the Program, which are what Output and Grad return.
type Program struct {
	g       *Graph
	train   *machine
	infer   *machine
	loss    *tensor.Dense
	outputs map[string]*tensor.Dense
	grads   map[*Param]*tensor.Dense
	inGrads map[string]*tensor.Dense
	plan    *MemoryPlan
	fusions int
	// trainFusions counts the ops the training machine passes through
	// (fuseTraining).
	trainFusions int
	// statsFusions counts the convolutions that collect the batch
	// statistics of the batch norm after them (fuseConvBatchStats).
	statsFusions int
	kernels      ops.Kernels
}

// MemoryPlan is the summary of the training machine's memory plan (nil when
// compiled WithoutMemoryPlan).
func (p *Program) MemoryPlan() *MemoryPlan { return p.plan }

// CompileOption tunes Compile.
type CompileOption func(*compileConfig)

type compileConfig struct {
	inputGrads []string
	noPlan     bool
	noFusion   bool
	kernels    *ops.Kernels
}

// WithKernels compiles the program to run the CPU kernels k chooses
// (ops.DefaultKernels without this option): for tests that compare kernels,
// and benchmarks of one kernel against another. The choice is the
// program's own; other programs in the process keep theirs.
func WithKernels(k ops.Kernels) CompileOption {
	return func(c *compileConfig) { c.kernels = &k }
}

// WithoutInferenceFusion compiles the inference machine without fusing
// convolution → batch norm [→ add] [→ ReLU] chains into single convolutions
// (Program.InferenceFusions): for tests that compare the two, and debugging.
func WithoutInferenceFusion() CompileOption {
	return func(c *compileConfig) { c.noFusion = true }
}

// WithoutMemoryPlan compiles without the memory plan (no in-place ops, no
// shared gradient storage): for tests that compare the two, and debugging.
func WithoutMemoryPlan() CompileOption {
	return func(c *compileConfig) { c.noPlan = true }
}

// WithInputGradients also computes the gradient of the loss with respect to
// the named inputs (e.g. df/dx for Figure 4), read with InputGrad.
func WithInputGradients(names ...string) CompileOption {
	return func(c *compileConfig) { c.inputGrads = append(c.inputGrads, names...) }
}

// Compile differentiates the output named loss with respect to every
// parameter and builds the two machines. A graph is compiled once; compile
// its rewrite (e.g. the erased graph) separately.
func Compile(g *Graph, loss string, opts ...CompileOption) (*Program, error) {
	var cc compileConfig
	for _, o := range opts {
		o(&cc)
	}
	l, ok := g.outputs[loss]
	if !ok {
		return nil, fmt.Errorf("compile: graph has no output %q (outputs: %v)", loss, g.outputOrder)
	}
	if l.Shape().TotalSize() != 1 {
		return nil, fmt.Errorf("compile: output %q has shape %v, want a scalar", loss, l.Shape())
	}
	if g.compiled {
		return nil, fmt.Errorf("compile: graph already compiled; compile a Rewrite of it instead")
	}
	kernels := ops.DefaultKernels()
	if cc.kernels != nil {
		kernels = *cc.kernels
	}
	env, err := ops.NewEnv(kernels)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	g.compiled = true
	p := &Program{g: g, outputs: map[string]*tensor.Dense{}, grads: map[*Param]*tensor.Dense{}, inGrads: map[string]*tensor.Dense{}, kernels: kernels}
	var outPins gorgonia.Nodes
	for _, name := range g.outputOrder {
		n := g.outputs[name]
		shape := n.Shape()
		if n.IsScalar() {
			shape = tensor.Shape{1}
		}
		t := tensor.New(tensor.Of(n.Dtype()), tensor.WithShape(shape...))
		pin, err := ops.Pin(n, t)
		if err != nil {
			return nil, fmt.Errorf("compile: output %q: %w", name, err)
		}
		p.outputs[name] = t
		outPins = append(outPins, pin)
	}
	p.loss = p.outputs[loss]
	trainPins := append(gorgonia.Nodes(nil), outPins...)

	forward := map[*gorgonia.Node]bool{}
	for _, n := range g.expr.AllNodes() {
		forward[n] = true
	}
	params := g.ParamNodes()
	wrt := append(gorgonia.Nodes(nil), params...)
	for _, name := range cc.inputGrads {
		in, ok := g.inputs[name]
		if !ok {
			return nil, fmt.Errorf("compile: no input %q to differentiate (inputs: %v)", name, g.inputOrder)
		}
		wrt = append(wrt, in)
	}
	gradNodes, err := backprop(g.expr, l, wrt)
	if err != nil {
		return nil, fmt.Errorf("compile: differentiate %q: %w", loss, err)
	}
	for i, prm := range g.params {
		t := tensor.New(tensor.Of(prm.Node.Dtype()), tensor.WithShape(prm.Node.Shape()...))
		pin, err := ops.Pin(gradNodes[i], t)
		if err != nil {
			return nil, fmt.Errorf("compile: gradient of %s: %w", prm.Name, err)
		}
		trainPins = append(trainPins, pin)
		p.grads[prm] = t
	}
	for i, name := range cc.inputGrads {
		n := g.inputs[name]
		t := tensor.New(tensor.Of(n.Dtype()), tensor.WithShape(n.Shape()...))
		pin, err := ops.Pin(gradNodes[len(params)+i], t)
		if err != nil {
			return nil, fmt.Errorf("compile: gradient of input %s: %w", name, err)
		}
		trainPins = append(trainPins, pin)
		p.inGrads[name] = t
	}
	// Only what the pins need: ops' SymDiff may emit gradients nobody uses
	// (the input image's), which the machine would otherwise compute.
	var outNodes gorgonia.Nodes
	for _, name := range g.outputOrder {
		outNodes = append(outNodes, g.outputs[name])
	}
	order := machineOrder(g.expr, trainPins)
	var inPlaceOver map[*gorgonia.Node]int
	if !cc.noPlan {
		p.plan, inPlaceOver = planMemory(order, func(n *gorgonia.Node) bool { return !forward[n] })
	}
	var skip map[*gorgonia.Node]int
	var trainFused map[*gorgonia.Node]fusedStep
	if kernels.TrainingFusion {
		skip, trainFused = fuseTraining(order, inPlaceOver)
		if kernels.ConvBatchStats {
			p.statsFusions = fuseConvBatchStats(order, inPlaceOver)
		}
	}
	p.train = newMachine(order, outNodes, trainFused)
	p.trainFusions = p.train.passThrough(skip)
	inferOrder := machineOrder(g.expr, outPins)
	var fused map[*gorgonia.Node]fusedStep
	if !cc.noFusion {
		inferOrder, fused = fuseInference(inferOrder, outNodes)
	}
	p.fusions = len(fused)
	p.infer = newMachine(inferOrder, outNodes, fused)
	// Every op of the graph (forward, backward and the convolutions fused
	// steps run) runs with the program's Env.
	for _, n := range g.expr.AllNodes() {
		if u, ok := n.Op().(ops.EnvUser); ok {
			u.UseEnv(env)
		}
	}
	return p, nil
}

// Kernels is the kernel choice the program runs (WithKernels).
func (p *Program) Kernels() ops.Kernels { return p.kernels }

// InferenceFusions is the number of convolution → batch norm [→ add]
// [→ ReLU] chains the inference machine runs as single convolutions whose
// epilogue applies the batch norm (folded from its running statistics at
// every run), the residual and the rectifier.
func (p *Program) InferenceFusions() int { return p.fusions }

// TrainingFusions is the number of ops the training machine passes
// through because the op before does their work as it writes
// (ops.Kernels.TrainingFusion): residual adds done by the batch norm
// before them, ReLUs done by the batch norm or add before them, and ReLU
// backward ops done by a batch norm's parameter-gradient op.
func (p *Program) TrainingFusions() int { return p.trainFusions }

// BatchStatsFusions is the number of convolutions that collect, in the
// training forward, the batch statistics of the batch norm that reads
// their output (ops.Kernels.ConvBatchStats), which then skips its
// statistics pass.
func (p *Program) BatchStatsFusions() int { return p.statsFusions }

// Graph is the compiled graph.
func (p *Program) Graph() *Graph { return p.g }

// Train runs one forward and backward pass in training mode. Bind the
// inputs (gorgonia.Let or by writing into their tensors) first.
func (p *Program) Train() error {
	p.g.mode.SetTraining(true)
	if err := p.train.run(); err != nil {
		return fmt.Errorf("training pass: %w", err)
	}
	return nil
}

// Infer runs the forward pass in inference mode.
func (p *Program) Infer() error {
	p.g.mode.SetTraining(false)
	defer p.g.mode.SetTraining(true)
	if err := p.infer.run(); err != nil {
		return fmt.Errorf("inference pass: %w", err)
	}
	return nil
}

// Loss is the value of the loss after the last pass.
func (p *Program) Loss() float64 { return ScalarOf(p.loss) }

// Output is the value of a named output after the last pass (a scalar
// output is a tensor of shape (1)); the tensor is reused by every pass.
func (p *Program) Output(name string) (*tensor.Dense, error) {
	t, ok := p.outputs[name]
	if !ok {
		return nil, fmt.Errorf("no output %q (outputs: %v)", name, p.g.outputOrder)
	}
	return t, nil
}

// Grad is the gradient of the loss with respect to prm after Train; the
// tensor is reused by every pass.
func (p *Program) Grad(prm *Param) (*tensor.Dense, error) {
	t, ok := p.grads[prm]
	if !ok {
		return nil, fmt.Errorf("%s is not a parameter of the compiled graph", prm.Name)
	}
	return t, nil
}

// InputGrad is the gradient of the loss with respect to a named input after
// Train, for inputs named by WithInputGradients.
func (p *Program) InputGrad(name string) (*tensor.Dense, error) {
	t, ok := p.inGrads[name]
	if !ok {
		return nil, fmt.Errorf("no gradient of input %q was compiled (use WithInputGradients)", name)
	}
	return t, nil
}

// Close releases the machines.
func (p *Program) Close() error {
	p.train.close()
	p.infer.close()
	return nil
}

// ScalarOf reads a float scalar value (or the first element of a tensor).
func ScalarOf(v gorgonia.Value) float64 {
	if v == nil {
		return 0
	}
	switch d := v.Data().(type) {
	case float64:
		return d
	case float32:
		return float64(d)
	case []float64:
		return d[0]
	case []float32:
		return float64(d[0])
	}
	return 0
}
