package graph

import (
	"fmt"
	"slices"
	"strings"

	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
)

// DiscoverModules finds and records the modules of a graph that has none
// recorded, such as a network written with plain Gorgonia calls and
// wrapped with Wrap, so that the erase pass can select them exactly as it
// selects the modules a builder records. It returns them in graph order.
//
// Discovery reads the data flow of the forward graph (the ancestors of the
// named outputs): the edges from the inputs (variables that are not
// parameters) through the ops, leaving out parameters, constants and the
// scalars computed from them (shapes, sizes). A node is a *weighted layer*
// (a convolution or a fully-connected layer) when it reads a parameter, or
// a value computed from parameters alone, of two or more dimensions, and is
// not an element-wise op (batch norm's scale is element-wise). Then:
//
//   - A residual module ends in an addition of two values that both derive
//     from one earlier node, its input: the addition's immediate dominator
//     in the data flow (every path from the inputs to the addition passes
//     through it), with at least one weighted layer between them. The
//     module holds every node from the input (excluded) to the addition and
//     the addition's trailing activation, when that is its only reader,
//     with a dropout after it; a block with no trailing activation
//     (pre-activation) also holds the normalisation and ReLU that open it
//     when its input is that ReLU and only weighted layers read it (its
//     projection shortcut and its first layer).
//   - An inception (concatenation) module is the same with a
//     concatenation of parallel branches in place of the addition.
//   - A plain unit is a chain weighted layer → [normalisation, pooling,
//     reshaping, ...] → activation [→ dropout] outside those modules. Its
//     kind is Plain when its output is 4-D (a convolution unit), else MLP.
//     A convolution unit that reads a graph input directly is the
//     network's stem, not one of its modules, as in every convolutional
//     network of the paper.
//
// The activation is a ReLU (IsReLU, gorgonia.Rectify included) or one the
// erase pass cannot erase (Activation: gorgonia.LeakyRelu, Sigmoid, ...),
// which then errs naming the node and the module. Modules are named
// "<kind><k>" ("residual1", "residual2", "plain1", ...), counting each
// kind in graph order, so equal graphs get equal names. A module found
// inside another becomes its child (Module.Parent); the erase pass counts
// leaves. Discovery needs the graph's outputs set (SetOutput) and its
// parameters declared (AddParam, NewParam).
func DiscoverModules(g *Graph) ([]*Module, error) {
	if len(g.modules) > 0 {
		return nil, fmt.Errorf("discover modules: the graph already records %d modules (first %q); discovery is for graphs without annotations", len(g.modules), g.modules[0].Name)
	}
	if len(g.outputs) == 0 {
		return nil, fmt.Errorf("discover modules: the graph has no outputs; name them with SetOutput first")
	}
	d := newDataFlow(g)
	found := d.joinModules()
	found = append(found, d.plainUnits()...)
	slices.SortFunc(found, func(a, b *Module) int { return d.index[a.Output] - d.index[b.Output] })
	counts := map[Kind]int{}
	for _, m := range found {
		counts[m.Kind]++
		m.Name = fmt.Sprintf("%s%d", m.Kind, counts[m.Kind])
	}
	g.modules = append(g.modules, found...)
	return found, nil
}

// root is the virtual dominator of every data input.
const root = -1

// dataFlow is the forward graph seen as data flow, with dominators.
type dataFlow struct {
	nodes   []*gorgonia.Node // forward nodes in graph (topological) order
	index   map[*gorgonia.Node]int
	kids    [][]*gorgonia.Node // Children of each node, read once
	readers [][]int            // effective readers (see top) of each node
	data    []bool             // carries data: depends on an input and is not a scalar
	derived []bool             // computed from parameters alone (parameters included)
	idom    []int              // immediate dominator over data edges, or root
	inputs  []bool             // a data input
	// top maps each inner node of an activation pattern (gorgonia.Rectify's
	// comparison, gorgonia.LeakyRelu's halves) to the pattern's last node;
	// readers go to that node, so a pattern reads as one op.
	top     map[*gorgonia.Node]*gorgonia.Node
	inner   map[*gorgonia.Node][]*gorgonia.Node // pattern's last node -> its inner nodes
	claimed map[*gorgonia.Node]*Module
	outputs map[*gorgonia.Node]*Module
}

func newDataFlow(g *Graph) *dataFlow {
	keep := g.forwardSet()
	d := &dataFlow{index: make(map[*gorgonia.Node]int, len(keep)), top: map[*gorgonia.Node]*gorgonia.Node{},
		inner: map[*gorgonia.Node][]*gorgonia.Node{}, claimed: map[*gorgonia.Node]*Module{}, outputs: map[*gorgonia.Node]*Module{}}
	for _, n := range g.expr.AllNodes() {
		if keep[n] {
			d.index[n] = len(d.nodes)
			d.nodes = append(d.nodes, n)
			d.kids = append(d.kids, Children(n))
		}
	}
	params := map[*gorgonia.Node]bool{}
	for _, p := range g.params {
		params[p.Node] = true
	}
	// Patterns, last node first, so a Rectify inside a LeakyRelu belongs
	// to the LeakyRelu.
	for i := len(d.nodes) - 1; i >= 0; i-- {
		n := d.nodes[i]
		if _, ok := d.top[n]; ok {
			continue
		}
		for _, in := range patternInner(n) {
			if _, ok := d.index[in]; ok {
				d.top[in] = n
				d.inner[n] = append(d.inner[n], in)
			}
		}
	}
	size := len(d.nodes)
	d.readers = make([][]int, size)
	d.data = make([]bool, size)
	d.derived = make([]bool, size)
	d.inputs = make([]bool, size)
	d.idom = make([]int, size)
	for i, n := range d.nodes {
		d.idom[i] = root
		switch {
		case n.IsVar():
			d.derived[i] = params[n]
			d.inputs[i] = !params[n] && !n.IsScalar()
			d.data[i] = d.inputs[i]
			continue
		case isConstant(n):
			continue
		}
		dom := root - 1 // none yet
		derived := false
		for _, k := range d.kids[i] {
			j := d.index[k]
			derived = derived || d.derived[j]
			if !d.data[j] {
				continue
			}
			if dom == root-1 {
				dom = j
			} else {
				dom = d.intersect(dom, j)
			}
		}
		d.data[i] = dom != root-1 && !n.IsScalar()
		d.derived[i] = derived && dom == root-1 && !d.dependsOnInput(i)
		if d.data[i] {
			d.idom[i] = dom
		}
	}
	for i, n := range d.nodes {
		r := n
		if t, ok := d.top[n]; ok {
			r = t
		}
		for _, k := range d.kids[i] {
			j := d.index[k]
			if r == k || d.top[k] == r {
				continue // inside one pattern
			}
			if !slices.Contains(d.readers[j], d.index[r]) {
				d.readers[j] = append(d.readers[j], d.index[r])
			}
		}
	}
	return d
}

// dependsOnInput reports whether a node with no data child still depends
// on an input through a scalar (a size, a mean).
func (d *dataFlow) dependsOnInput(i int) bool {
	for _, k := range d.kids[i] {
		j := d.index[k]
		if d.data[j] || (!d.derived[j] && !k.IsVar() && !isConstant(k)) {
			return true
		}
	}
	return false
}

// intersect is the nearest common dominator of nodes a and b (Cooper,
// Harvey and Kennedy's walk, on graph-order indices).
func (d *dataFlow) intersect(a, b int) int {
	for a != b {
		for a > b {
			a = d.idom[a]
		}
		for b > a {
			b = d.idom[b]
		}
	}
	return a
}

// patternInner returns the inner nodes of the activation pattern that n
// ends: gorgonia.Rectify's comparison, or gorgonia.LeakyRelu's five nodes.
func patternInner(n *gorgonia.Node) []*gorgonia.Node {
	if isLeakyReLU(n) {
		kids := Children(n)
		pos, neg := kids[0], Children(kids[1])[0]
		out := []*gorgonia.Node{pos, kids[1], neg, Children(neg)[1]}
		if _, cmp, ok := rectifyPattern(pos); ok {
			out = append(out, cmp)
		}
		return out
	}
	if _, cmp, ok := rectifyPattern(n); ok {
		return []*gorgonia.Node{cmp}
	}
	return nil
}

// activationInput returns the input of an activation node (see
// Activation), and whether n is one.
func activationInput(n *gorgonia.Node) (*gorgonia.Node, bool) {
	if x, ok := ReLUInput(n); ok {
		return x, true
	}
	switch a := Activation(n); {
	case a == "":
		return nil, false
	case a == "gorgonia.LeakyRelu":
		return ReLUInput(Children(n)[0])
	default:
		return Children(n)[0], true
	}
}

// elementwise reports whether n is an element-wise binary op: the
// library's add or one of Gorgonia's (whose String is "<operator> <bool>",
// op_math.go), which may read a full-shape scale or bias.
func elementwise(n *gorgonia.Node) bool {
	if ops.IsAdd(n) {
		return true
	}
	s := binaryString(n)
	return strings.HasSuffix(s, " false") || strings.HasSuffix(s, " true")
}

// weighted reports whether node i is a weighted layer (see DiscoverModules).
func (d *dataFlow) weighted(i int) bool {
	n := d.nodes[i]
	if !d.data[i] || n.IsVar() || elementwise(n) {
		return false
	}
	for _, k := range d.kids[i] {
		if d.derived[d.index[k]] && k.Dims() >= 2 {
			return true
		}
	}
	return false
}

// isJoin reports whether node i adds or concatenates two or more data
// values that share a dominator other than the root.
func (d *dataFlow) isJoin(i int) bool {
	n := d.nodes[i]
	if !d.data[i] || d.idom[i] == root {
		return false
	}
	inputs := 0
	for _, k := range d.kids[i] {
		if d.data[d.index[k]] {
			inputs++
		}
	}
	if inputs < 2 || ops.IsAdd(n) || ops.IsConcat(n) {
		return inputs >= 2
	}
	if binaryString(n) == gorgoniaAdd {
		return !isLeakyReLU(n)
	}
	return strings.HasPrefix(opString(n), "Concat(") // gorgonia.Concat
}

// single is the only effective reader of node i, or -1.
func (d *dataFlow) single(i int) int {
	if len(d.readers[i]) != 1 {
		return -1
	}
	return d.readers[i][0]
}

// trailing extends a module ending at node i with its trailing activation
// (i's only reader, reading i) and a dropout after it; it returns the
// module's output and the nodes added.
func (d *dataFlow) trailing(i int) (out int, added []int, activated bool) {
	out = i
	r := d.single(i)
	if r < 0 {
		return out, nil, false
	}
	if x, ok := activationInput(d.nodes[r]); !ok || x != d.nodes[i] {
		return out, nil, false
	}
	out, added = d.dropoutAfter(r)
	return out, append([]int{r}, added...), true
}

// dropoutAfter returns the dropout that is the only reader of activation
// a, with it as the nodes added, or a itself.
func (d *dataFlow) dropoutAfter(a int) (int, []int) {
	if dr := d.single(a); dr >= 0 && ops.IsDropout(d.nodes[dr]) {
		return dr, []int{dr}
	}
	return a, nil
}

// joinModules finds the residual and inception modules in graph order.
func (d *dataFlow) joinModules() []*Module {
	var found []*Module
	for j := range d.nodes {
		if !d.isJoin(j) {
			continue
		}
		fork := d.idom[j]
		region, ok := d.region(j, fork)
		if !ok {
			continue
		}
		kind := Residual
		if !ops.IsAdd(d.nodes[j]) && binaryString(d.nodes[j]) != gorgoniaAdd {
			kind = Inception
		}
		out, tail, activated := d.trailing(j)
		region = append(region, tail...)
		if !activated && kind == Residual {
			region = append(region, d.preActivation(fork)...)
		}
		m := d.record(kind, out, region)
		for _, x := range m.Members {
			if inner := d.outputs[x]; inner != nil && inner != m && inner.Parent == nil {
				inner.Parent = m
			}
		}
		found = append(found, m)
	}
	return found
}

// region is every op node on a path from fork (excluded) to join, with the
// parameter-side nodes they read, and whether a weighted layer is among
// them. Every data path into join passes through fork (its dominator), so
// the walk stops there; a scalar computed from data (a size) is a member
// but not walked through, as it may read nodes before the fork.
func (d *dataFlow) region(join, fork int) ([]int, bool) {
	seen := map[int]bool{join: true}
	stack := []int{join}
	weighted := false
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		weighted = weighted || d.weighted(i)
		if d.nodes[i].IsScalar() && !d.derived[i] {
			continue
		}
		for _, k := range d.kids[i] {
			j := d.index[k]
			if j == fork || seen[j] || k.IsVar() || isConstant(k) {
				continue
			}
			seen[j] = true
			stack = append(stack, j)
		}
	}
	out := make([]int, 0, len(seen))
	for i := range seen {
		out = append(out, i)
	}
	return out, weighted
}

// preActivation is the normalisation → ReLU that opens a pre-activation
// block whose shortcut reads the pre-activated input: when the fork is a
// ReLU read only by weighted layers (the shortcut's projection and the
// branch's first layer), the chain back from it to the previous module's
// output, an activation, a dropout, a weighted layer or an input.
func (d *dataFlow) preActivation(fork int) []int {
	if !IsReLU(d.nodes[fork]) {
		return nil
	}
	for _, r := range d.readers[fork] {
		if !d.weighted(r) {
			return nil
		}
	}
	out := []int{fork}
	for i := fork; ; {
		k := d.dataChild(i)
		if k < 0 || d.inputs[k] || d.weighted(k) || d.outputs[d.nodes[k]] != nil || d.claimed[d.nodes[k]] != nil ||
			len(d.readers[k]) != 1 || d.isJoin(k) || ops.IsDropout(d.nodes[k]) {
			return out
		}
		if _, act := activationInput(d.nodes[k]); act {
			return out
		}
		out, i = append(out, k), k
	}
}

// dataChild is the one data input of node i (an activation's input for an
// activation pattern), or -1 when it has none or several.
func (d *dataFlow) dataChild(i int) int {
	if x, ok := activationInput(d.nodes[i]); ok {
		return d.index[x]
	}
	found := -1
	for _, k := range d.kids[i] {
		if j := d.index[k]; d.data[j] {
			if found >= 0 && found != j {
				return -1
			}
			found = j
		}
	}
	return found
}

// plainUnits finds the chains weighted layer → ... → activation [→
// dropout] that no module holds.
func (d *dataFlow) plainUnits() []*Module {
	var found []*Module
	for a, n := range d.nodes {
		if _, ok := activationInput(n); !ok || d.claimed[n] != nil || d.top[n] != nil {
			continue
		}
		chain := []int{a}
		weighted, stem := false, false
		for i := a; ; {
			k := d.dataChild(i)
			if k < 0 {
				break
			}
			if d.inputs[k] {
				stem = true
				break
			}
			kn := d.nodes[k]
			if d.claimed[kn] != nil || len(d.readers[k]) != 1 || d.isJoin(k) {
				break
			}
			if _, act := activationInput(kn); act {
				break
			}
			if d.weighted(k) {
				if weighted {
					break // a second layer belongs to the unit before
				}
				weighted = true
			}
			chain, i = append(chain, k), k
		}
		if !weighted {
			continue
		}
		out, tail := d.dropoutAfter(a)
		kind := MLP
		if d.nodes[out].Dims() == 4 {
			kind = Plain
		}
		if stem && kind == Plain {
			continue // the network's stem
		}
		members := append(chain, tail...)
		for _, i := range chain {
			members = append(members, d.parameterSide(i)...)
		}
		found = append(found, d.record(kind, out, members))
	}
	return found
}

// parameterSide is the op nodes computed from parameters (or sizes) that
// node i reads: a reshaped filter, a broadcast bias.
func (d *dataFlow) parameterSide(i int) []int {
	var out []int
	stack := []int{i}
	for len(stack) > 0 {
		j := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, k := range d.kids[j] {
			kj := d.index[k]
			if d.data[kj] || k.IsVar() || isConstant(k) || slices.Contains(out, kj) {
				continue
			}
			out = append(out, kj)
			if d.derived[kj] {
				stack = append(stack, kj)
			}
		}
	}
	return out
}

// record makes a module of the given nodes (with the inner nodes of their
// activation patterns) ending at out, and claims its nodes.
func (d *dataFlow) record(kind Kind, out int, nodes []int) *Module {
	m := &Module{Kind: kind, Output: d.nodes[out]}
	in := map[int]bool{}
	for _, i := range nodes {
		in[i] = true
		for _, x := range d.inner[d.nodes[i]] {
			in[d.index[x]] = true
		}
	}
	idx := make([]int, 0, len(in))
	for i := range in {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	for _, i := range idx {
		n := d.nodes[i]
		m.Members = append(m.Members, n)
		if d.claimed[n] == nil {
			d.claimed[n] = m
		}
	}
	d.outputs[m.Output] = m
	return m
}
