package graph

import (
	"fmt"

	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func isPinNode(n *gorgonia.Node) bool {
	_, ok := n.Op().(*ops.PinOp)
	return ok
}

// machine runs the op nodes of a graph in a fixed order, calling each op's
// Do with its inputs' values. It replaces Gorgonia's tape machine, whose
// compiler is quadratic in the number of nodes (6 s for ResNet-1202's
// training graph), merges nodes of equal 32-bit hashes, and spends a
// goroutine and allocations on every run; here a run allocates nothing of
// its own and the order is the one the memory plan was made for.
//
// Inputs and constants are read from their nodes at every run (so
// gorgonia.Let between runs takes effect); the values of the nodes in bind
// (the named outputs) are bound to their nodes after each run, so that
// node.Value() reads them as with Gorgonia's machine.
type machine struct {
	steps []mstep
	vals  []gorgonia.Value
}

// stepRunner is a machine step that stands for a chain of nodes (the fused
// steps ops.FusedConv and ops.BatchNormAdd).
type stepRunner interface {
	Run(vs ...gorgonia.Value) (gorgonia.Value, error)
	String() string
}

type mstep struct {
	node  *gorgonia.Node
	op    gorgonia.Op
	fused stepRunner       // runs instead of op when not nil
	args  []int            // index into vals, or -1: read from the node
	from  []*gorgonia.Node // the argument nodes
	in    []gorgonia.Value // reused argument slice
	bind  bool
	pass  bool // returns its argument passArg instead of running
	// passArg is the argument a passed-through step returns: the one its
	// op writes over in place.
	passArg int
}

// machineOrder is the order in which a machine computing roots runs the op
// nodes: graph (creation) order, which is topological, with each pin moved
// to right after the node it copies, so that the pinned value (a gradient)
// can die at once.
func machineOrder(g *gorgonia.ExprGraph, roots gorgonia.Nodes) gorgonia.Nodes {
	need := map[*gorgonia.Node]bool{}
	stack := append(gorgonia.Nodes(nil), roots...)
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if need[n] {
			continue
		}
		need[n] = true
		stack = append(stack, Children(n)...)
	}
	pinsOf := map[*gorgonia.Node]gorgonia.Nodes{}
	isPin := map[*gorgonia.Node]bool{}
	for _, n := range g.AllNodes() {
		if need[n] && isPinNode(n) {
			k := Children(n)[0]
			pinsOf[k] = append(pinsOf[k], n)
			isPin[n] = true
		}
	}
	var order gorgonia.Nodes
	for _, n := range g.AllNodes() {
		if !need[n] || isPin[n] || n.IsVar() || n.Op() == nil || isConstant(n) {
			continue
		}
		order = append(order, n)
		order = append(order, pinsOf[n]...)
	}
	// pins of inputs or constants (not op nodes) run first
	var first gorgonia.Nodes
	for k, ps := range pinsOf {
		if k.IsVar() || k.Op() == nil || isConstant(k) {
			first = append(first, ps...)
		}
	}
	return append(first, order...)
}

// newMachine prepares a machine running order; bind lists the nodes whose
// values are bound to them after each run; fused replaces the op and inputs
// of some nodes (fuseInference).
func newMachine(order gorgonia.Nodes, bind gorgonia.Nodes, fused map[*gorgonia.Node]fusedStep) *machine {
	pos := map[*gorgonia.Node]int{}
	for i, n := range order {
		pos[n] = i
	}
	binds := map[*gorgonia.Node]bool{}
	for _, n := range bind {
		binds[n] = true
	}
	m := &machine{steps: make([]mstep, len(order)), vals: make([]gorgonia.Value, len(order))}
	for i, n := range order {
		kids := Children(n)
		s := mstep{node: n, op: n.Op(), bind: binds[n]}
		if f, ok := fused[n]; ok {
			kids, s.fused = f.args, f.run
		}
		s.args, s.from, s.in = make([]int, len(kids)), kids, make([]gorgonia.Value, len(kids))
		for j, k := range kids {
			if p, ok := pos[k]; ok {
				s.args[j] = p
			} else {
				s.args[j] = -1
			}
		}
		m.steps[i] = s
	}
	return m
}

// passThrough makes the step of each node in skip return its argument
// skip[node] instead of running its op, and returns how many it found.
func (m *machine) passThrough(skip map[*gorgonia.Node]int) int {
	n := 0
	for i := range m.steps {
		if j, ok := skip[m.steps[i].node]; ok {
			m.steps[i].pass, m.steps[i].passArg = true, j
			n++
		}
	}
	return n
}

// run executes every step once.
func (m *machine) run() error {
	for i := range m.steps {
		s := &m.steps[i]
		for j, a := range s.args {
			if a >= 0 {
				s.in[j] = m.vals[a]
			} else {
				s.in[j] = s.from[j].Value()
			}
			if s.in[j] == nil {
				return fmt.Errorf("%v: input %d (%v) has no value (bind the graph's inputs first)", s.node, j, s.from[j])
			}
		}
		var v gorgonia.Value
		var err error
		switch {
		case s.pass:
			v = s.in[s.passArg]
		case s.fused != nil:
			v, err = s.fused.Run(s.in...)
		default:
			v, err = s.op.Do(s.in...)
		}
		if err != nil {
			if s.fused != nil {
				return fmt.Errorf("%v (%v): %w", s.node, s.fused, err)
			}
			return fmt.Errorf("%v (%v): %w", s.node, s.op, err)
		}
		m.vals[i] = v
	}
	for i := range m.steps {
		// ops reuse their buffers, so the node is usually bound to this
		// value already (UnsafeLet allocates: it clones the node's shape)
		if s := &m.steps[i]; s.bind && !sameValue(s.node.Value(), m.vals[i]) {
			if err := gorgonia.UnsafeLet(s.node, m.vals[i]); err != nil {
				return fmt.Errorf("bind %v: %w", s.node, err)
			}
		}
	}
	return nil
}

// sameValue reports whether a and b are the same tensor or scalar
// (pointers; values of other types may not be comparable: never the same).
func sameValue(a, b gorgonia.Value) bool {
	switch ta := a.(type) {
	case *tensor.Dense:
		tb, ok := b.(*tensor.Dense)
		return ok && ta == tb
	case *gorgonia.F32:
		tb, ok := b.(*gorgonia.F32)
		return ok && ta == tb
	case *gorgonia.F64:
		tb, ok := b.(*gorgonia.F64)
		return ok && ta == tb
	}
	return false
}

// close drops the values.
func (m *machine) close() {
	clear(m.vals)
	for i := range m.steps {
		clear(m.steps[i].in)
	}
}
