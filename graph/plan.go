package graph

import (
	"fmt"

	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// This file is the memory plan of a compiled machine: which ops may write
// their output over an input (in place), and which backward ops share
// storage because their values are never alive at the same time. The ops
// obey it through a small interface (graph/ops/storage.go: ops.InPlacer,
// ops.OutputOwner with ops.Slot, ops.OrderOnly).
//
// The plan works on the machine's instruction order and on value readers:
// node b reads node a when a is an input of b, except the inputs an op only
// takes to be ordered after a node (ops.OrderOnly). Two rules keep it safe:
//
//   - In place: an op may overwrite input a when a is the output of an op of
//     this library, of the same shape and dtype, that nothing else reads. The
//     storage of a then carries on as the op's output, so every op in a chain
//     of in-place ops had the storage to itself.
//   - Shared storage: only backward ops (the nodes Compile added to
//     differentiate) get storage from shared slots; they are made afresh by
//     every Compile, so no other machine runs them. A value's life runs from
//     the op that writes it to the last op that reads it (or reads an op
//     in place over it); two values share a slot only when their lives do
//     not overlap. A value read by an op outside this library lives to the
//     end of the run, as such an op may return a view of it.
//
// A graph is compiled once and its rewrites have ops of their own (Rewrite
// clones them), so no other plan ever directs the same op.

// MemoryPlan is what PlanMemory decided, for reports and tests.
type MemoryPlan struct {
	// InPlace is the number of ops that write over an input.
	InPlace int
	// Shared is the number of backward values stored in shared slots,
	// Slots the number of slots and SlotBytes their total size.
	Shared, Slots int
	SlotBytes     int64
	// PrivateBytes is the size of the output buffers the plan left to
	// their ops (forward values, values read outside the library).
	PrivateBytes int64
}

func (p *MemoryPlan) String() string {
	return fmt.Sprintf("%d ops in place, %d backward values in %d slots (%.1f MiB), %.1f MiB private outputs",
		p.InPlace, p.Shared, p.Slots, float64(p.SlotBytes)/(1<<20), float64(p.PrivateBytes)/(1<<20))
}

// planMemory plans the machine whose instructions run the op nodes of order
// in that order; backward tells the nodes added by differentiation. It sets
// the in-place permissions and slots of the ops and returns a summary and,
// for each op it put in place, the input it writes over. Call it once per
// machine, before the machine first runs.
func planMemory(order gorgonia.Nodes, backward func(*gorgonia.Node) bool) (*MemoryPlan, map[*gorgonia.Node]int) {
	plan := &MemoryPlan{}
	over := map[*gorgonia.Node]int{}
	idx := make(map[*gorgonia.Node]int, len(order))
	for i, n := range order {
		idx[n] = i
	}
	end := len(order)
	// readers counts value-reading edges; last is the last reader's index;
	// escapes marks values read by an op outside the library.
	readers := map[*gorgonia.Node]int{}
	last := map[*gorgonia.Node]int{}
	escapes := map[*gorgonia.Node]bool{}
	for i, n := range order {
		oo, _ := n.Op().(ops.OrderOnly)
		_, lib := n.Op().(ops.OutputOwner)
		if isPinNode(n) {
			lib = true // a pin copies its input and keeps no reference to it
		}
		for j, k := range Children(n) {
			if oo != nil && oo.OrdersOnly(j) {
				continue
			}
			readers[k]++
			last[k] = max(last[k], i)
			if !lib {
				escapes[k] = true
			}
		}
	}
	// In place, in order, so that a chain's storage root is known when the
	// next link is decided.
	root := map[*gorgonia.Node]*gorgonia.Node{} // node -> the node whose buffer holds its value
	for _, n := range order {
		root[n] = n
		ip, ok := n.Op().(ops.InPlacer)
		if !ok {
			continue
		}
		kids := Children(n)
		chosen := -1
		for _, j := range ip.InPlaceCandidates() {
			if j >= len(kids) {
				continue
			}
			k := kids[j]
			if _, ok := idx[k]; !ok || readers[k] != 1 || escapes[k] {
				continue
			}
			if _, ok := k.Op().(ops.OutputOwner); !ok {
				continue
			}
			if backward(k) != backward(n) || k.Dtype() != n.Dtype() || !k.Shape().Eq(n.Shape()) {
				continue
			}
			chosen = j
			break
		}
		ip.SetInPlace(chosen)
		if chosen >= 0 {
			root[n] = root[kids[chosen]]
			over[n] = chosen
			plan.InPlace++
		}
	}
	// Lives of storage: from the root's index to the last read of any value
	// held in it.
	type life struct {
		root       *gorgonia.Node
		start, end int
		size       int
		dt         tensor.Dtype
	}
	lives := map[*gorgonia.Node]*life{}
	var roots []*life
	for i, n := range order {
		r := root[n]
		l := lives[r]
		if l == nil {
			l = &life{root: r, start: i, end: i, size: n.Shape().TotalSize(), dt: n.Dtype()}
			lives[r] = l
			roots = append(roots, l)
		}
		e := last[n]
		if readers[n] == 0 || escapes[n] {
			e = end
		}
		l.end = max(l.end, e)
	}
	// Slots for backward roots, greedily: a life takes the smallest free
	// slot that fits, else the largest free one (grown), else a new one.
	type planSlot struct {
		o    []ops.OutputOwner // the ops whose outputs live in it
		size int
		dt   tensor.Dtype
		busy int // index of the last read of its current value
	}
	var slots []*planSlot
	for _, l := range roots {
		o, ok := l.root.Op().(ops.OutputOwner)
		if !ok {
			continue
		}
		bytes := int64(l.size) * int64(l.dt.Size())
		if !backward(l.root) || l.end == end || (l.dt != tensor.Float32 && l.dt != tensor.Float64) {
			o.UseSlot(nil)
			plan.PrivateBytes += bytes
			continue
		}
		var best, largest *planSlot
		for _, s := range slots {
			if s.dt != l.dt || s.busy >= l.start {
				continue
			}
			if s.size >= l.size && (best == nil || s.size < best.size) {
				best = s
			}
			if largest == nil || s.size > largest.size {
				largest = s
			}
		}
		if best == nil {
			best = largest
		}
		if best == nil {
			best = &planSlot{dt: l.dt}
			slots = append(slots, best)
		}
		best.size = max(best.size, l.size)
		best.busy = l.end
		best.o = append(best.o, o)
		plan.Shared++
	}
	plan.Slots = len(slots)
	for _, s := range slots {
		plan.SlotBytes += int64(s.size) * int64(s.dt.Size())
		// allocated now, at the planned size, so that runs never grow it
		shared := ops.NewSlot(s.dt, s.size)
		for _, o := range s.o {
			o.UseSlot(shared)
		}
	}
	return plan, over
}
