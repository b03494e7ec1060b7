package cuda

// Recomputing batch-norm outputs in the backward pass.
//
// A convolution block keeps, for its backward pass, the convolution's output
// (batch norm's backward reads it) and batch norm's output (the next
// convolution's filter gradient and the fused ReLU's backward read it). The
// second is a function of the first and of a few per-channel numbers that
// stay put until the optimizer runs (gamma, beta, the batch statistics), so
// it can be computed again where the backward pass needs it instead of
// being kept from the forward pass: one more memory-bound pass per batch
// norm, and one activation fewer kept per block. At ResNet-1202 (batch 128)
// batch norm's outputs are a quarter of the arena. The recomputation runs
// the forward pass's own instruction on the same inputs, so the step's
// results are bit for bit those without it.

// RecomputeBN rewrites an unplanned training step so that the backward
// pass reads recomputed batch-norm outputs: for each forward bn_apply or
// bn_apply_relu whose output the backward pass reads, a copy of that
// instruction writing a new buffer goes just before the first such read,
// and every backward read takes the new buffer. The forward buffer's life
// then ends in the forward pass. An output is kept when the backward pass
// writes it or when an input of its instruction changes before the
// recomputation. It returns the number of outputs recomputed.
func (s *Step) RecomputeBN() int {
	if s.Base != nil {
		return 0
	}
	bwd := -1
	for i, in := range s.Instrs[:s.OptStart] {
		if in.Kernel == ceBwd.name {
			bwd = i
			break
		}
	}
	if bwd < 0 {
		return 0
	}
	writesAny := func(in Instr, ids []int) bool {
		for _, w := range in.Writes {
			for _, id := range ids {
				if w == id {
					return true
				}
			}
		}
		return false
	}
	reads := func(in Instr, id int) bool {
		for _, b := range in.Bufs {
			if b == id {
				return true
			}
		}
		return false
	}
	applies := map[int]bool{} // outputs of forward batch-norm applies
	for _, in := range s.Instrs[:bwd] {
		if isBNApply(in.Kernel) {
			applies[in.Bufs[4]] = true
		}
	}
	before := map[int][]Instr{} // instruction index -> recomputations to insert before it
	renamed := map[int]int{}    // forward output -> its recomputed buffer
	for i, in := range s.Instrs[:bwd] {
		if !isBNApply(in.Kernel) {
			continue
		}
		y, inputs := in.Bufs[4], in.Bufs[:4]
		if applies[inputs[0]] {
			continue // a batch norm of a batch norm: its input may be recomputed too
		}
		first := -1
		for j := bwd; j < s.OptStart; j++ {
			if reads(s.Instrs[j], y) {
				first = j
				break
			}
		}
		if first < 0 {
			continue
		}
		keep := false
		for j := bwd; j < s.OptStart && !keep; j++ {
			keep = writesAny(s.Instrs[j], []int{y})
		}
		for j := i + 1; j < first && !keep; j++ {
			keep = writesAny(s.Instrs[j], inputs)
		}
		if keep {
			continue
		}
		b := *s.Bufs[y]
		b.Name += "/recomputed"
		b.First, b.Last, b.Offset = -1, -1, 0
		s.Bufs = append(s.Bufs, &b)
		y2 := len(s.Bufs) - 1
		re := in
		re.Bufs = append(append([]int(nil), inputs...), y2)
		re.Writes = []int{y2}
		re.Node = in.Node + " (recomputed)"
		before[first] = append(before[first], re)
		renamed[y] = y2
	}
	if len(renamed) == 0 {
		return 0
	}
	out := make([]Instr, 0, len(s.Instrs)+len(renamed))
	for j, in := range s.Instrs {
		out = append(out, before[j]...)
		if j >= bwd && j < s.OptStart {
			in.Bufs = renameAll(in.Bufs, renamed)
			in.Writes = renameAll(in.Writes, renamed)
		}
		out = append(out, in)
	}
	s.Instrs = out
	s.OptStart += len(renamed)
	return len(renamed)
}

func renameAll(ids []int, to map[int]int) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		if r, ok := to[id]; ok {
			id = r
		}
		out[i] = id
	}
	return out
}
