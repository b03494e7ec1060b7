package cuda

import (
	"fmt"
	"sort"
)

// Alignment of every buffer that is not part of a packed region: cuBLAS
// and vectorised loads want 256-byte aligned pointers.
const Alignment = 256

func alignUp(x, a int64) int64 { return (x + a - 1) / a * a }

// Plan computes every buffer's liveness and offset, once, and the arena
// size. Layout: parameters, gradients and velocities each packed without
// gaps in slot order (so one SGD launch covers a run of parameters), then
// the other persistent buffers, then the activations and scratch buffers,
// which share memory when their live ranges [First, Last] do not overlap.
//
// An inference step (LowerInference) keeps its Base's layout: its shared
// buffers take the Base's offsets, and its activations are packed after the
// Base's persistent region, over the Base's activations (the two steps never
// run at the same time). If they need more room than the Base's arena,
// Plan grows Base.ArenaBytes: plan the inference step before allocating
// the arena.
func (s *Step) Plan() error {
	if err := s.liveness(); err != nil {
		return err
	}
	if s.Base != nil {
		return s.planOnto()
	}
	var off int64
	for _, kind := range []BufKind{Param, Grad, Velocity} {
		off = alignUp(off, Alignment)
		for _, sl := range s.Params {
			id := map[BufKind]int{Param: sl.Param, Grad: sl.Grad, Velocity: sl.Vel}[kind]
			b := s.Bufs[id]
			b.Offset = off
			off += b.Bytes()
		}
	}
	slot := map[int]bool{}
	for _, sl := range s.Params {
		slot[sl.Param], slot[sl.Grad], slot[sl.Vel] = true, true, true
	}
	for id, b := range s.Bufs {
		if slot[id] || !b.Kind.Persistent() {
			continue
		}
		off = alignUp(off, Alignment)
		b.Offset = off
		off += b.Bytes()
	}
	s.ArenaBytes = s.placeTransient(alignUp(off, Alignment))
	return s.checkSGDRuns()
}

// liveness sets every buffer's First and Last instruction and checks that
// an activation is written by its first instruction. The loss and logits
// of an inference step, activations there, stay live to the end, so the
// host can read them after the step.
func (s *Step) liveness() error {
	for _, b := range s.Bufs {
		b.First, b.Last = -1, -1
	}
	for i, in := range s.Instrs {
		for _, id := range in.Bufs {
			b := s.Bufs[id]
			if b.First < 0 {
				b.First = i
			}
			b.Last = i
		}
	}
	if s.Base != nil {
		for _, id := range []int{s.Loss, s.Logits} {
			if id >= 0 && s.Bufs[id].First >= 0 && !s.Bufs[id].Kind.Persistent() {
				s.Bufs[id].Last = len(s.Instrs) - 1
			}
		}
	}
	for i, in := range s.Instrs {
		for _, id := range in.Bufs {
			b := s.Bufs[id]
			if b.Kind.Persistent() || b.First != i {
				continue
			}
			written := false
			for _, w := range in.Writes {
				written = written || w == id
			}
			if !written {
				return fmt.Errorf("plan: %s (%v) is read by %s before anything writes it", b.Name, b.Kind, in)
			}
		}
	}
	return nil
}

// planOnto lays an inference step out in its Base's arena.
func (s *Step) planOnto() error {
	base := s.Base
	if base.ArenaBytes == 0 {
		return fmt.Errorf("plan: plan the base step before the inference step lowered onto it")
	}
	var end int64 // end of the base's persistent region
	for _, b := range base.Bufs {
		if b.Kind.Persistent() {
			end = max(end, b.Offset+b.Bytes())
		}
	}
	for id, b := range s.Bufs {
		if !b.Kind.Persistent() {
			continue
		}
		bid, ok := s.Shared[id]
		if !ok {
			return fmt.Errorf("plan: %s (%v) is persistent but not a buffer of the base step", b.Name, b.Kind)
		}
		ob := base.Bufs[bid]
		if ob.Bytes() != b.Bytes() || ob.Kind != b.Kind {
			return fmt.Errorf("plan: %s (%v, %d bytes) is not its base buffer %s (%v, %d bytes)", b.Name, b.Kind, b.Bytes(), ob.Name, ob.Kind, ob.Bytes())
		}
		b.Offset = ob.Offset
	}
	s.ArenaBytes = max(s.placeTransient(alignUp(end, Alignment)), base.ArenaBytes)
	base.ArenaBytes = s.ArenaBytes
	return nil
}

// placeTransient places the activations and scratch buffers from base on:
// largest first, each at the lowest aligned offset that overlaps no placed
// buffer live at the same time. It returns the end of the arena.
func (s *Step) placeTransient(base int64) int64 {
	var order []int
	for id, b := range s.Bufs {
		if !b.Kind.Persistent() && b.First >= 0 {
			order = append(order, id)
		}
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := s.Bufs[order[i]], s.Bufs[order[j]]
		if a.Bytes() != b.Bytes() {
			return a.Bytes() > b.Bytes()
		}
		return a.First < b.First
	})
	type span struct{ lo, hi int64 }
	var done []int
	top := base
	for _, id := range order {
		b := s.Bufs[id]
		var busy []span
		for _, o := range done {
			ob := s.Bufs[o]
			if s.NoShare || (ob.First <= b.Last && b.First <= ob.Last) {
				busy = append(busy, span{ob.Offset, ob.Offset + alignUp(ob.Bytes(), Alignment)})
			}
		}
		sort.Slice(busy, func(i, j int) bool { return busy[i].lo < busy[j].lo })
		at := base
		for _, sp := range busy {
			if at+b.Bytes() <= sp.lo {
				break
			}
			at = max(at, sp.hi)
		}
		b.Offset = at
		top = max(top, at+alignUp(b.Bytes(), Alignment))
		done = append(done, id)
	}
	// Unused buffers (never referenced) get no memory.
	for _, b := range s.Bufs {
		if !b.Kind.Persistent() && b.First < 0 {
			b.Offset = -1
		}
	}
	return top
}

// checkSGDRuns verifies that each sgd launch covers contiguous memory.
func (s *Step) checkSGDRuns() error {
	for _, r := range s.SGDRuns() {
		for k := 1; k < len(r); k++ {
			p, q := s.Params[r[k-1]], s.Params[r[k]]
			for _, pair := range [][2]int{{p.Param, q.Param}, {p.Grad, q.Grad}, {p.Vel, q.Vel}} {
				a, b := s.Bufs[pair[0]], s.Bufs[pair[1]]
				if a.Offset+a.Bytes() != b.Offset {
					return fmt.Errorf("plan: %s and %s are not contiguous", a.Name, b.Name)
				}
			}
		}
	}
	return nil
}

// TransientBytes is the sum of the activation and scratch sizes: what the
// arena would need without sharing.
func (s *Step) TransientBytes() int64 {
	var t int64
	for _, b := range s.Bufs {
		if !b.Kind.Persistent() && b.First >= 0 {
			t += alignUp(b.Bytes(), Alignment)
		}
	}
	return t
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
