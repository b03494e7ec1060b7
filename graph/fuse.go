package graph

import (
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
)

// fusedStep is a step of the inference machine that stands for a chain of
// nodes: run computes the chain's last node from args.
type fusedStep struct {
	run  stepRunner
	args []*gorgonia.Node
}

// fuseInference finds, in the inference machine's order, the chains
// convolution → batch norm [→ add] [→ ReLU] in which each link is the only
// reader of the one before and no link but the last is a bound output, and
// replaces each by one ops.FusedConv step at the position of its last
// node (after every input of the chain). A node joins one chain at most:
// of two convolutions added together (a projection shortcut), the first in
// order takes the add. It follows the graph: a chain ends
// where a value has a second reader or the next op is of another kind, as
// after the erase pass removed the ReLU that followed an add. It returns
// the order without the fused-away nodes and the fused steps by last node.
func fuseInference(order gorgonia.Nodes, bound gorgonia.Nodes) (gorgonia.Nodes, map[*gorgonia.Node]fusedStep) {
	readers := map[*gorgonia.Node]int{}
	reader := map[*gorgonia.Node]*gorgonia.Node{}
	for _, n := range order {
		for _, k := range Children(n) {
			readers[k]++
			reader[k] = n
		}
	}
	isBound := map[*gorgonia.Node]bool{}
	for _, n := range bound {
		isBound[n] = true
	}
	fused := map[*gorgonia.Node]fusedStep{}
	removed := map[*gorgonia.Node]bool{}
	claimed := map[*gorgonia.Node]bool{} // nodes in a chain already
	// next is the only reader of n when no chain claimed it yet, or nil.
	next := func(n *gorgonia.Node) *gorgonia.Node {
		if readers[n] != 1 || isBound[n] || claimed[reader[n]] {
			return nil
		}
		return reader[n]
	}
	for _, conv := range order {
		if _, ok := conv.Op().(*ops.Conv2DOp); !ok {
			continue
		}
		bn := next(conv)
		if bn == nil || !ops.IsBatchNorm(bn) {
			continue
		}
		last := bn
		var add, relu *gorgonia.Node
		if a := next(bn); a != nil && ops.IsAdd(a) {
			add, last = a, a
		}
		if r := next(last); r != nil && ops.IsReLU(r) {
			relu, last = r, r
		}
		op, args, err := ops.FuseConvInference(conv, bn, add, relu)
		if err != nil {
			continue // not a chain the fused op computes: leave it unfused
		}
		fused[last] = fusedStep{run: op, args: args}
		for _, n := range []*gorgonia.Node{conv, bn, add, relu} {
			if n != nil {
				claimed[n] = true
				removed[n] = n != last
			}
		}
	}
	if len(fused) == 0 {
		return order, nil
	}
	out := make(gorgonia.Nodes, 0, len(order)-len(removed))
	for _, n := range order {
		if !removed[n] {
			out = append(out, n)
		}
	}
	return out, fused
}
