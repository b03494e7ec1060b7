// Package graph holds module-annotated Gorgonia expression graphs: the
// network as Gorgonia nodes plus a record of its modules (the paper's f_i:
// a residual block, a VGG unit, an inception module, an MLP layer), its named
// parameters and buffers, and its named inputs and outputs.
//
// The annotations are what make a finished graph rewritable: the erase pass
// selects modules by number, name or kind and asks each for its trailing ReLU.
// A graph built with this package's builder records modules as it goes
// (Build); a graph built with plain Gorgonia calls is wrapped (Wrap) and its
// modules marked afterwards by their output nodes (MarkModule) or found
// from its structure (DiscoverModules). A rectifier is the library's ReLU op
// or gorgonia.Rectify's node pattern (IsReLU); Canonicalize makes each one
// op.
//
// Rewrite re-emits a graph into a fresh ExprGraph node by node, sharing (or
// copying) parameters, with a hook to substitute nodes; the erase pass is one
// such substitution. Compile turns a graph into tape machines for training
// and inference.
package graph

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Kind classifies a module; the erase pass can filter by it.
type Kind string

// The module kinds of the paper's Figure 2; users may define their own.
const (
	Residual  Kind = "residual"
	Plain     Kind = "plain"
	Inception Kind = "inception"
	MLP       Kind = "mlp"
)

// Module is one basic unit f_i of the network.
type Module struct {
	// Name is the path-like scope of the module, e.g. "stage2/block3".
	Name string
	Kind Kind
	// Output is the node whose value is the module's output.
	Output *gorgonia.Node
	// Members are the op nodes computed inside the module, in graph order,
	// Output included; parameters and the module's input are not members.
	Members []*gorgonia.Node
	// Parent is the enclosing module of a nested module, else nil.
	Parent *Module
}

// Param is a trainable variable of the graph.
type Param struct {
	Name string
	Node *gorgonia.Node
	// NoDecay exempts the parameter from weight decay.
	NoDecay bool
}

// Buffer is non-trainable state that a checkpoint must keep, such as the
// running statistics of batch norm. Ops update the tensor in place.
type Buffer struct {
	Name  string
	Value *tensor.Dense
}

// Graph is a Gorgonia expression graph with module annotations.
type Graph struct {
	expr  *gorgonia.ExprGraph
	dtype tensor.Dtype
	mode  *ops.Mode
	rng   *rand.Rand

	params  []*Param
	buffers []*Buffer
	names   map[string]bool // every param and buffer name, for uniqueness
	modules []*Module

	scope []string
	open  []*Module // modules being built, innermost last

	compiled bool

	inputs, outputs         map[string]*gorgonia.Node
	inputOrder, outputOrder []string
}

// New returns an empty graph of the given float dtype. The seed drives
// parameter initialisation and any op randomness, so equal seeds build equal
// networks.
func New(dtype tensor.Dtype, seed uint64) *Graph {
	return Wrap(gorgonia.NewGraph(), dtype, seed)
}

// Wrap annotates an existing expression graph, e.g. one built with plain
// Gorgonia calls. Declare its parameters with AddParam, its inputs and
// outputs with SetInput and SetOutput, and its modules with MarkModule or
// DiscoverModules before erasing it.
func Wrap(expr *gorgonia.ExprGraph, dtype tensor.Dtype, seed uint64) *Graph {
	return &Graph{
		expr:    expr,
		dtype:   dtype,
		mode:    ops.NewMode(),
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		names:   map[string]bool{},
		inputs:  map[string]*gorgonia.Node{},
		outputs: map[string]*gorgonia.Node{},
	}
}

// Expr is the underlying Gorgonia graph.
func (g *Graph) Expr() *gorgonia.ExprGraph { return g.expr }

// Dtype is the float type of the graph's tensors.
func (g *Graph) Dtype() tensor.Dtype { return g.dtype }

// Mode is the training/inference switch shared by the graph's ops.
func (g *Graph) Mode() *ops.Mode { return g.mode }

// Rand is the graph's random source for initialisation and op seeds.
func (g *Graph) Rand() *rand.Rand { return g.rng }

// Params lists the trainable parameters in creation order.
func (g *Graph) Params() []*Param { return g.params }

// Buffers lists the non-trainable state tensors in creation order.
func (g *Graph) Buffers() []*Buffer { return g.buffers }

// Modules lists the modules in graph order (the order their outputs were built).
func (g *Graph) Modules() []*Module { return g.modules }

// ParamNodes returns the parameter nodes, e.g. for gorgonia.Grad.
func (g *Graph) ParamNodes() gorgonia.Nodes {
	ns := make(gorgonia.Nodes, len(g.params))
	for i, p := range g.params {
		ns[i] = p.Node
	}
	return ns
}

// ParamCount is the number of trainable scalars.
func (g *Graph) ParamCount() int {
	n := 0
	for _, p := range g.params {
		n += p.Node.Shape().TotalSize()
	}
	return n
}

// Module finds a module by name.
func (g *Graph) Module(name string) (*Module, bool) {
	for _, m := range g.modules {
		if m.Name == name {
			return m, true
		}
	}
	return nil, false
}

// Leaves returns the modules that contain no other module: the units the
// paper counts when it erases "a proportion of modules".
func (g *Graph) Leaves() []*Module {
	parents := map[*Module]bool{}
	for _, m := range g.modules {
		if m.Parent != nil {
			parents[m.Parent] = true
		}
	}
	var out []*Module
	for _, m := range g.modules {
		if !parents[m] {
			out = append(out, m)
		}
	}
	return out
}

// Scope returns the current name scope as a path, e.g. "stage2/block3".
func (g *Graph) Scope() string { return strings.Join(g.scope, "/") }

// Within runs build with name pushed onto the scope, so that parameters
// created inside are named "<scope>/<name>/...".
func (g *Graph) Within(name string, build func() error) error {
	g.scope = append(g.scope, name)
	defer func() { g.scope = g.scope[:len(g.scope)-1] }()
	return build()
}

// Build records a module while build constructs it inside the scope name:
// every op node created by build becomes a member, and the node it returns
// the module's output. Modules may nest.
func (g *Graph) Build(name string, kind Kind, build func() (*gorgonia.Node, error)) (*gorgonia.Node, error) {
	var out *gorgonia.Node
	start := len(g.expr.AllNodes())
	m := &Module{Kind: kind}
	if len(g.open) > 0 {
		m.Parent = g.open[len(g.open)-1]
	}
	g.open = append(g.open, m)
	err := g.Within(name, func() error {
		m.Name = g.Scope()
		var err error
		out, err = build()
		return err
	})
	g.open = g.open[:len(g.open)-1]
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", m.Name, err)
	}
	if out == nil {
		return nil, fmt.Errorf("module %s: build returned no output node", m.Name)
	}
	for _, n := range g.expr.AllNodes()[start:] {
		if n.Op() != nil && !n.IsVar() && !isConstant(n) {
			m.Members = append(m.Members, n)
		}
	}
	m.Output = out
	g.modules = append(g.modules, m)
	return out, nil
}

// MarkModule declares a module of a graph built by other means: its output
// node and, optionally, the nodes that feed it from outside. Members are the
// op nodes between them; without inputs the walk stops at the outputs of the
// modules marked before. Mark modules in graph order.
func (g *Graph) MarkModule(name string, kind Kind, output *gorgonia.Node, inputs ...*gorgonia.Node) error {
	if output == nil {
		return fmt.Errorf("mark module %q: nil output node", name)
	}
	if output.Graph() != g.expr {
		return fmt.Errorf("mark module %q: output node %v belongs to another graph", name, output)
	}
	if _, dup := g.Module(name); dup {
		return fmt.Errorf("mark module %q: a module of that name exists", name)
	}
	stop := map[*gorgonia.Node]bool{}
	for _, in := range inputs {
		stop[in] = true
	}
	if len(inputs) == 0 {
		for _, m := range g.modules {
			stop[m.Output] = true
		}
	}
	seen := map[*gorgonia.Node]bool{}
	queue := []*gorgonia.Node{output}
	for len(queue) > 0 {
		n := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if seen[n] || (stop[n] && n != output) || n.IsVar() || isConstant(n) {
			continue
		}
		seen[n] = true
		queue = append(queue, Children(n)...)
	}
	m := &Module{Name: name, Kind: kind, Output: output}
	for _, n := range g.expr.AllNodes() {
		if seen[n] {
			m.Members = append(m.Members, n)
		}
	}
	g.modules = append(g.modules, m)
	return nil
}

// AddParam declares an existing variable node as a trainable parameter.
func (g *Graph) AddParam(n *gorgonia.Node, noDecay bool) (*Param, error) {
	if !n.IsVar() {
		return nil, fmt.Errorf("parameter %v is not a variable node", n)
	}
	if g.names[n.Name()] {
		return nil, fmt.Errorf("parameter name %q is used twice (Gorgonia merges variables of one name)", n.Name())
	}
	g.names[n.Name()] = true
	p := &Param{Name: n.Name(), Node: n, NoDecay: noDecay}
	g.params = append(g.params, p)
	return p, nil
}

// uniqueName returns "<scope>/<name>", suffixed with _1, _2, ... if taken.
func (g *Graph) uniqueName(name string) string {
	full := name
	if s := g.Scope(); s != "" {
		full = s + "/" + name
	}
	candidate := full
	for i := 1; g.names[candidate]; i++ {
		candidate = fmt.Sprintf("%s_%d", full, i)
	}
	g.names[candidate] = true
	return candidate
}

// NewParam creates a trainable parameter named after the current scope,
// initialised by init, which writes the initial values into a slice of the
// graph's dtype (see the Init functions).
func (g *Graph) NewParam(name string, shape []int, init Init, noDecay bool) *gorgonia.Node {
	t := tensor.New(tensor.Of(g.dtype), tensor.WithShape(shape...))
	init(g.rng, shape, t)
	n := gorgonia.NewTensor(g.expr, g.dtype, len(shape), gorgonia.WithShape(shape...),
		gorgonia.WithName(g.uniqueName(name)), gorgonia.WithValue(t))
	g.params = append(g.params, &Param{Name: n.Name(), Node: n, NoDecay: noDecay})
	return n
}

// NewBuffer creates a named non-trainable state tensor filled with fill.
func (g *Graph) NewBuffer(name string, shape []int, fill float64) *tensor.Dense {
	t := tensor.New(tensor.Of(g.dtype), tensor.WithShape(shape...))
	switch d := t.Data().(type) {
	case []float32:
		for i := range d {
			d[i] = float32(fill)
		}
	case []float64:
		for i := range d {
			d[i] = fill
		}
	}
	g.buffers = append(g.buffers, &Buffer{Name: g.uniqueName(name), Value: t})
	return t
}

// AddBuffer registers an existing tensor as named state.
func (g *Graph) AddBuffer(name string, t *tensor.Dense) error {
	if g.names[name] {
		return fmt.Errorf("buffer name %q is used twice", name)
	}
	g.names[name] = true
	g.buffers = append(g.buffers, &Buffer{Name: name, Value: t})
	return nil
}

// NewInput creates an unbound input variable (data fed each step).
func (g *Graph) NewInput(name string, dtype tensor.Dtype, shape ...int) *gorgonia.Node {
	n := gorgonia.NewTensor(g.expr, dtype, len(shape), gorgonia.WithShape(shape...), gorgonia.WithName(name))
	g.SetInput(name, n)
	return n
}

// SetInput names a node as an input of the graph.
func (g *Graph) SetInput(name string, n *gorgonia.Node) {
	if _, ok := g.inputs[name]; !ok {
		g.inputOrder = append(g.inputOrder, name)
	}
	g.inputs[name] = n
}

// SetOutput names a node as an output of the graph (e.g. "logits", "loss").
// Rewrite keeps exactly the ancestors of the outputs and of the modules.
func (g *Graph) SetOutput(name string, n *gorgonia.Node) {
	if _, ok := g.outputs[name]; !ok {
		g.outputOrder = append(g.outputOrder, name)
	}
	g.outputs[name] = n
}

// Input returns a named input node.
func (g *Graph) Input(name string) (*gorgonia.Node, bool) { n, ok := g.inputs[name]; return n, ok }

// Output returns a named output node.
func (g *Graph) Output(name string) (*gorgonia.Node, bool) { n, ok := g.outputs[name]; return n, ok }

// InputNames and OutputNames list the names in the order they were set.
func (g *Graph) InputNames() []string  { return append([]string(nil), g.inputOrder...) }
func (g *Graph) OutputNames() []string { return append([]string(nil), g.outputOrder...) }

// Children returns the argument nodes of n in order.
func Children(n *gorgonia.Node) []*gorgonia.Node { return ops.Inputs(n) }

func isConstant(n *gorgonia.Node) bool {
	return n.Op() != nil && n.Op().Arity() == 0
}
