package graph

import (
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
)

// fuseTrainingReLU finds the ReLUs of the training machine's order that the
// memory plan put in place over the output of an op that can rectify as it
// writes (ops.OutputRectifier: batch norm, add), turns the rectification on
// in that op, and returns those ReLUs, which the machine then passes
// through (machine.passThrough). In place means the ReLU is the only
// reader of that output (ops that take it only for ordering aside) and
// writes over its storage, so the storage holds the rectified value either
// way, and the ReLU's backward reads the same tensor; the bits are those of
// the unfused machine. inPlaceOver is the plan's choice of overwritten
// input per op (nil without a plan: nothing is fused).
func fuseTrainingReLU(order gorgonia.Nodes, inPlaceOver map[*gorgonia.Node]int) map[*gorgonia.Node]bool {
	skip := map[*gorgonia.Node]bool{}
	for _, n := range order {
		if j, ok := inPlaceOver[n]; !ok || j != 0 || !ops.IsReLU(n) {
			continue
		}
		r, ok := Children(n)[0].Op().(ops.OutputRectifier)
		if !ok {
			continue
		}
		r.RectifyOutput(true)
		skip[n] = true
	}
	return skip
}
