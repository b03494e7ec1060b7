package graph

import (
	"fmt"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Program is a graph compiled for training and inference.
//
// The training machine runs the forward pass, the loss and the backward
// pass (gradients of every parameter); the inference machine runs only the
// ancestors of the named outputs. Both switch the graph's mode before they
// run, so batch norm and dropout behave as they should in each.
type Program struct {
	g     *Graph
	loss  *gorgonia.Node
	train gorgonia.VM
	infer gorgonia.VM
	grads map[*Param]*gorgonia.Node
}

// Compile differentiates the output named loss with respect to every
// parameter and builds the two machines. A graph is compiled once; compile
// its rewrite (e.g. the erased graph) separately.
func Compile(g *Graph, loss string) (*Program, error) {
	l, ok := g.outputs[loss]
	if !ok {
		return nil, fmt.Errorf("compile: graph has no output %q (outputs: %v)", loss, g.outputOrder)
	}
	if !l.IsScalar() {
		return nil, fmt.Errorf("compile: output %q has shape %v, want a scalar", loss, l.Shape())
	}
	params := g.ParamNodes()
	gradNodes, err := gorgonia.Grad(l, params...)
	if err != nil {
		return nil, fmt.Errorf("compile: differentiate %q: %w", loss, err)
	}
	p := &Program{g: g, loss: l, grads: map[*Param]*gorgonia.Node{}}
	for i, prm := range g.params {
		p.grads[prm] = gradNodes[i]
	}
	p.train = gorgonia.NewTapeMachine(g.expr, gorgonia.BindDualValues(params...))
	var roots gorgonia.Nodes
	for _, name := range g.outputOrder {
		roots = append(roots, g.outputs[name])
	}
	p.infer = gorgonia.NewTapeMachine(g.expr.SubgraphRoots(roots...))
	return p, nil
}

// Graph is the compiled graph.
func (p *Program) Graph() *Graph { return p.g }

// Train runs one forward and backward pass in training mode. Bind the
// inputs (gorgonia.Let or by writing into their tensors) first.
func (p *Program) Train() error {
	p.g.mode.SetTraining(true)
	p.train.Reset()
	if err := p.train.RunAll(); err != nil {
		return fmt.Errorf("training pass: %w", err)
	}
	return nil
}

// Infer runs the forward pass in inference mode.
func (p *Program) Infer() error {
	p.g.mode.SetTraining(false)
	defer p.g.mode.SetTraining(true)
	p.infer.Reset()
	if err := p.infer.RunAll(); err != nil {
		return fmt.Errorf("inference pass: %w", err)
	}
	return nil
}

// Loss is the value of the loss after the last pass.
func (p *Program) Loss() float64 { return ScalarOf(p.loss.Value()) }

// Grad is the gradient of the loss with respect to prm after Train.
func (p *Program) Grad(prm *Param) (*tensor.Dense, error) {
	v, err := prm.Node.Grad()
	if err != nil {
		return nil, fmt.Errorf("gradient of %s: %w", prm.Name, err)
	}
	d, ok := v.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("gradient of %s is %T, not a dense tensor", prm.Name, v)
	}
	return d, nil
}

// Close releases the machines.
func (p *Program) Close() error {
	p.train.Close()
	return p.infer.Close()
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
