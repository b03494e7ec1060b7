package graph

import (
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
)

// fuseTraining moves the rectifiers and residual adds of the training
// machine into the ops beside them, where the memory plan lets it change no
// bit. It returns the nodes the machine then passes through
// (machine.passThrough) with the argument each returns: the one its op
// would have written over in place, so that the pass-through step's value
// is the tensor the op would have returned; and the batch norms the
// machine runs as fused steps (ops.BatchNormAdd). inPlaceOver is the plan's
// choice of overwritten input per op (nil without a plan: nothing is
// fused).
//
//   - A residual add in place over the output of a batch norm whose other
//     input is computed before the batch norm: the batch norm adds it as it
//     writes (ops.BatchNormAdd). In place means the add is that output's
//     only reader (ops that take it only for ordering aside), so the
//     storage holds the sum either way.
//   - A ReLU in place over the output of an op that can rectify as it
//     writes (ops.OutputRectifier: batch norm, add, or the fused batch norm
//     that does an add's work): for the same reason the storage holds the
//     rectified value either way, and the ReLU's backward reads the same
//     tensor.
//   - The backward of a ReLU, when it runs in place over its incoming
//     gradient and its first reader is the parameter-gradient op of a batch
//     norm (ops.ReLUGradMasker) that reads that gradient and takes as its
//     forward output a value whose storage ends up holding the ReLU's
//     output (the ReLU and any add between them ran in place over the batch
//     norm's output, and nothing wrote over the ReLU's output after it):
//     that op masks the gradient in place as it sums it, so that it and
//     every later reader see the masked gradient, as they would have.
func fuseTraining(order gorgonia.Nodes, inPlaceOver map[*gorgonia.Node]int) (map[*gorgonia.Node]int, map[*gorgonia.Node]fusedStep) {
	skip := map[*gorgonia.Node]int{}
	fused := map[*gorgonia.Node]fusedStep{}
	// writer is the rectifier of a passed-through add: the fused step
	// that writes its value.
	writer := map[*gorgonia.Node]ops.OutputRectifier{}
	pos := map[*gorgonia.Node]int{}
	firstReader := map[*gorgonia.Node]*gorgonia.Node{}
	// root is the node whose storage holds a value; lastHeld the last value
	// (in order) a storage holds.
	root := map[*gorgonia.Node]*gorgonia.Node{}
	lastHeld := map[*gorgonia.Node]*gorgonia.Node{}
	for i, n := range order {
		pos[n] = i
		kids := Children(n)
		for _, k := range kids {
			if _, ok := firstReader[k]; !ok {
				firstReader[k] = n
			}
		}
		root[n] = n
		if j, ok := inPlaceOver[n]; ok {
			if r, ok := root[kids[j]]; ok {
				root[n] = r
			}
		}
		lastHeld[root[n]] = n
	}
	for _, n := range order {
		j, ok := inPlaceOver[n]
		if !ok {
			continue
		}
		kids := Children(n)
		switch {
		case ops.IsAdd(n) && ops.IsBatchNorm(kids[j]):
			bn, res := kids[j], kids[1-j]
			if p, ok := pos[res]; ok && p > pos[bn] {
				continue
			}
			f, args, err := ops.FuseBatchNormAdd(bn, n)
			if err != nil {
				continue
			}
			fused[bn] = fusedStep{run: f, args: args}
			writer[n] = f
			skip[n] = j
		case j == 0 && ops.IsReLU(n):
			r, ok := writer[kids[0]]
			if !ok {
				if r, ok = kids[0].Op().(ops.OutputRectifier); !ok {
					continue
				}
			}
			r.RectifyOutput(true)
			skip[n] = j
		case j == 1 && ops.Describe(n.Op()).Kind == ops.KindReLUGrad:
			relu := kids[0]
			pg := firstReader[n]
			m, ok := pg.Op().(ops.ReLUGradMasker)
			if !ok || !ops.IsReLU(relu) || lastHeld[root[relu]] != relu {
				continue
			}
			if in := Children(pg); len(in) != 3 || root[in[1]] != root[relu] || in[2] != n {
				continue
			}
			m.MaskReLUGrad(true)
			skip[n] = j
		}
	}
	return skip, fused
}

// fuseConvBatchStats makes each convolution whose output a batch norm
// normalises collect that batch norm's statistics as it writes
// (ops.FuseConvBatchStats), so the batch norm's training forward skips its
// statistics pass; it returns how many it paired. A pair is skipped when an
// op in between runs in place over the convolution's output (the batch norm
// would then normalise another value than the one summed).
func fuseConvBatchStats(order gorgonia.Nodes, inPlaceOver map[*gorgonia.Node]int) int {
	pos := map[*gorgonia.Node]int{}
	// overwritten: the last position at which an op writes in place over
	// a node's output
	overwritten := map[*gorgonia.Node]int{}
	for i, n := range order {
		pos[n] = i
		if j, ok := inPlaceOver[n]; ok {
			overwritten[Children(n)[j]] = i
		}
	}
	count := 0
	for _, n := range order {
		if !ops.IsBatchNorm(n) {
			continue
		}
		conv := Children(n)[0]
		if p, ok := pos[conv]; !ok || ops.Describe(conv.Op()).Kind != ops.KindConv2D {
			continue
		} else if w, ok := overwritten[conv]; ok && w > p && w < pos[n] {
			continue
		}
		if ops.FuseConvBatchStats(conv, n) == nil {
			count++
		}
	}
	return count
}
