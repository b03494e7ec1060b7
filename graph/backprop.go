package graph

import (
	"fmt"

	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// backprop adds to g the nodes of d loss / d wrt by reverse-mode symbolic
// differentiation through each op's SymDiff, and returns them in wrt's order.
//
// It replaces gorgonia.Grad so that gradients arriving at one node from
// several consumers are summed by the library's Add op (whose output buffer
// is reused every step) rather than by Gorgonia's, which allocates.
func backprop(g *gorgonia.ExprGraph, loss *gorgonia.Node, wrt gorgonia.Nodes) (gorgonia.Nodes, error) {
	// The nodes the loss depends on, in graph (topological) order.
	needed := map[*gorgonia.Node]bool{}
	stack := []*gorgonia.Node{loss}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if needed[n] {
			continue
		}
		needed[n] = true
		stack = append(stack, Children(n)...)
	}
	var order []*gorgonia.Node
	for _, n := range g.AllNodes() {
		if needed[n] {
			order = append(order, n)
		}
	}
	// Active nodes depend on some wrt node through differentiable edges.
	active := map[*gorgonia.Node]bool{}
	for _, n := range wrt {
		if !needed[n] {
			return nil, fmt.Errorf("loss does not depend on %v", n)
		}
		active[n] = true
	}
	for _, n := range order {
		if active[n] || n.IsVar() || n.Op() == nil {
			continue
		}
		sd, ok := n.Op().(gorgonia.SDOp)
		if !ok {
			continue
		}
		kids := Children(n)
		diff := sd.DiffWRT(len(kids))
		for i, k := range kids {
			if active[k] && i < len(diff) && diff[i] {
				active[n] = true
				break
			}
		}
	}
	if !active[loss] {
		return nil, fmt.Errorf("loss %v does not depend on any parameter", loss)
	}

	grads := map[*gorgonia.Node][]*gorgonia.Node{}
	one := g.AddNode(gorgonia.NewConstant(oneOf(loss.Dtype()), gorgonia.WithName("dloss")))
	grads[loss] = []*gorgonia.Node{one}
	summed := map[*gorgonia.Node]*gorgonia.Node{}
	for i := len(order) - 1; i >= 0; i-- {
		n := order[i]
		if !active[n] {
			continue
		}
		grad, err := sum(grads[n])
		if err != nil {
			return nil, fmt.Errorf("sum the gradients of %v: %w", n, err)
		}
		if grad == nil {
			continue // active but unused by the loss through differentiable edges
		}
		summed[n] = grad
		if n.IsVar() {
			continue
		}
		sd, ok := n.Op().(gorgonia.SDOp)
		if !ok {
			return nil, fmt.Errorf("op %v of node %v is not differentiable (no SymDiff)", n.Op(), n)
		}
		kids := Children(n)
		childGrads, err := sd.SymDiff(kids, n, grad)
		if err != nil {
			return nil, fmt.Errorf("differentiate %v: %w", n, err)
		}
		diff := sd.DiffWRT(len(kids))
		for j, k := range kids {
			if j < len(diff) && diff[j] && active[k] && j < len(childGrads) && childGrads[j] != nil {
				grads[k] = append(grads[k], childGrads[j])
			}
		}
	}
	out := make(gorgonia.Nodes, len(wrt))
	for i, n := range wrt {
		if out[i] = summed[n]; out[i] == nil {
			return nil, fmt.Errorf("no gradient reaches %v", n)
		}
	}
	return out, nil
}

// sum adds gradient contributions pairwise with the library's Add.
func sum(ns []*gorgonia.Node) (*gorgonia.Node, error) {
	if len(ns) == 0 {
		return nil, nil
	}
	acc := ns[0]
	for _, n := range ns[1:] {
		var err error
		if acc.IsScalar() {
			acc, err = gorgonia.Add(acc, n)
		} else {
			acc, err = ops.Add(acc, n)
		}
		if err != nil {
			return nil, err
		}
	}
	return acc, nil
}

func oneOf(dt tensor.Dtype) interface{} {
	if dt == tensor.Float32 {
		return float32(1)
	}
	return float64(1)
}
