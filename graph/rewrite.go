package graph

import (
	"fmt"

	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Mapping maps each node of a source graph to its counterpart in a rewrite.
type Mapping map[*gorgonia.Node]*gorgonia.Node

// Substitute is called for every op node of the source graph, in graph
// order, with the node's children already mapped into dst. It returns the
// node that stands for n in dst, or nil to re-emit n unchanged (the same op
// applied to the mapped children). Returning a child removes n.
type Substitute func(n *gorgonia.Node, children []*gorgonia.Node, dst *Graph) (*gorgonia.Node, error)

// RewriteOptions tune Rewrite.
type RewriteOptions struct {
	// CopyParams gives the new graph its own copies of the parameters and
	// buffers; by default they are shared (the same tensors), so training
	// either graph trains both.
	CopyParams bool
}

// Rewrite re-emits the forward part of src (every parameter, every module,
// every ancestor of a named output) into a fresh graph, node by node in
// graph order, letting subst replace nodes. Module annotations, inputs and
// outputs are carried over through the mapping. Gradient nodes added by
// Compile are not part of the forward part and are left behind.
//
// The new graph has ops of its own: every op that owns state (ops.Cloner:
// output and work buffers, saved values, the mode switch, random draw
// counters) is cloned, onto the new graph's mode switch, so src and its
// rewrite train and infer concurrently. They share the parameter and buffer
// tensors unless opt.CopyParams, and an op outside this library that does
// not implement ops.Cloner is reused as it is.
func Rewrite(src *Graph, subst Substitute, opt RewriteOptions) (*Graph, Mapping, error) {
	dst := Wrap(gorgonia.NewGraph(), src.dtype, src.rng.Uint64())
	keep := src.forwardSet()
	m := Mapping{}

	params := map[*gorgonia.Node]*Param{}
	for _, p := range src.params {
		params[p.Node] = p
	}
	bufCopies := map[*tensor.Dense]*tensor.Dense{}
	for _, b := range src.buffers {
		v := b.Value
		if opt.CopyParams {
			v = b.Value.Clone().(*tensor.Dense)
			bufCopies[b.Value] = v
		}
		if err := dst.AddBuffer(b.Name, v); err != nil {
			return nil, nil, err
		}
	}
	rebind := func(t *tensor.Dense) *tensor.Dense {
		if c, ok := bufCopies[t]; ok {
			return c
		}
		return t
	}

	for _, n := range src.expr.AllNodes() {
		if !keep[n] {
			continue
		}
		switch {
		case n.IsVar():
			nn, err := copyVar(dst, n, opt.CopyParams && params[n] != nil)
			if err != nil {
				return nil, nil, err
			}
			m[n] = nn
			if p := params[n]; p != nil {
				dst.names[p.Name] = true
				dst.params = append(dst.params, &Param{Name: p.Name, Node: nn, NoDecay: p.NoDecay})
			}
		case isConstant(n):
			m[n] = dst.expr.Constant(n.Value())
		default:
			kids := Children(n)
			mapped := make([]*gorgonia.Node, len(kids))
			for i, k := range kids {
				if mapped[i] = m[k]; mapped[i] == nil {
					return nil, nil, fmt.Errorf("rewrite: child %v of %v was not emitted", k, n)
				}
			}
			var nn *gorgonia.Node
			var err error
			if subst != nil {
				if nn, err = subst(n, mapped, dst); err != nil {
					return nil, nil, fmt.Errorf("rewrite %v: %w", n, err)
				}
			}
			if nn == nil {
				op := n.Op()
				if c, ok := op.(ops.Cloner); ok {
					op = c.CloneOp(ops.CloneTarget{Mode: dst.mode, Buffer: rebind})
				}
				if nn, err = gorgonia.ApplyOp(op, mapped...); err != nil {
					return nil, nil, fmt.Errorf("rewrite: re-emit %v: %w", n, err)
				}
			}
			m[n] = nn
		}
	}

	parents := map[*Module]*Module{}
	for _, mod := range src.modules {
		nm := &Module{Name: mod.Name, Kind: mod.Kind, Output: m[mod.Output], Parent: parents[mod.Parent]}
		seen := map[*gorgonia.Node]bool{}
		for _, x := range mod.Members {
			if y := m[x]; y != nil && !seen[y] && !y.IsVar() && !isConstant(y) {
				seen[y] = true
				nm.Members = append(nm.Members, y)
			}
		}
		parents[mod] = nm
		dst.modules = append(dst.modules, nm)
	}
	for _, name := range src.inputOrder {
		if n := m[src.inputs[name]]; n != nil {
			dst.SetInput(name, n)
		}
	}
	for _, name := range src.outputOrder {
		dst.SetOutput(name, m[src.outputs[name]])
	}
	return dst, m, nil
}

// forwardSet is every node that Rewrite must emit.
func (g *Graph) forwardSet() map[*gorgonia.Node]bool {
	keep := map[*gorgonia.Node]bool{}
	var stack []*gorgonia.Node
	for _, p := range g.params {
		stack = append(stack, p.Node)
	}
	for _, n := range g.inputs {
		stack = append(stack, n)
	}
	for _, n := range g.outputs {
		stack = append(stack, n)
	}
	for _, mod := range g.modules {
		stack = append(stack, mod.Output)
	}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if keep[n] {
			continue
		}
		keep[n] = true
		stack = append(stack, Children(n)...)
	}
	return keep
}

func copyVar(dst *Graph, n *gorgonia.Node, copyValue bool) (*gorgonia.Node, error) {
	opts := []gorgonia.NodeConsOpt{gorgonia.WithName(n.Name()), gorgonia.WithShape(n.Shape()...)}
	if v := n.Value(); v != nil {
		if copyValue {
			t, ok := v.(tensor.Tensor)
			if !ok {
				return nil, fmt.Errorf("rewrite: parameter %s holds %T, not a tensor", n.Name(), v)
			}
			v = t.Clone().(tensor.Tensor)
		}
		opts = append(opts, gorgonia.WithValue(v))
	}
	if n.IsScalar() {
		return gorgonia.NewScalar(dst.expr, n.Dtype(), opts...), nil
	}
	return gorgonia.NewTensor(dst.expr, n.Dtype(), n.Dims(), opts...), nil
}
