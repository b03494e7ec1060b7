package cuda

import (
	"fmt"
	"math"
)

// Ref runs a planned Step on the CPU with the semantics of kernels/ops.cu:
// one float32 arena laid out as Plan decided (int32 labels stored bit for
// bit), so a planning error (two live buffers sharing memory) corrupts the
// result exactly as it would on the device. It is the executable
// specification the device kernels are written against, and what the CPU
// tests compare with graph.Program.
type Ref struct {
	S     *Step
	Arena []float32
}

// NewRef allocates the arena and fills the buffers that have initial
// contents (the Const buffers, the loss scaler).
func NewRef(s *Step) *Ref {
	r := &Ref{S: s, Arena: make([]float32, s.ArenaBytes/ElemSize)}
	for _, b := range s.Bufs {
		if b.Init != nil {
			copy(r.buf(b), b.Init)
		}
	}
	return r
}

// buf is the arena words of b (a bf16 buffer's elements two to a word:
// view them with halves).
func (r *Ref) buf(b *Buf) []float32 {
	o := b.Offset / ElemSize
	return r.Arena[o : o+int64(b.Words())]
}

// Buf is the contents of buffer id.
func (r *Ref) Buf(id int) []float32 { return r.buf(r.S.Bufs[id]) }

// Write copies v into buffer id (the Executor's and the Device's Write).
func (r *Ref) Write(id int, v []float32) error {
	b := r.S.Bufs[id]
	if len(v) > b.Words() {
		return fmt.Errorf("write %s: %d values into %d", b.Name, len(v), b.Words())
	}
	copy(r.Buf(id), v)
	return nil
}

// SetBatch stores the images and labels of a batch in the step's inputs.
func (r *Ref) SetBatch(x []float32, y []int) error {
	s := r.S
	if len(x) != s.Bufs[s.X].Elems || len(y) != s.Bufs[s.Y].Elems {
		return fmt.Errorf("batch of %d image values and %d labels, step takes %d and %d", len(x), len(y), s.Bufs[s.X].Elems, s.Bufs[s.Y].Elems)
	}
	copy(r.Buf(s.X), x)
	r.SetInts(s.Y, y)
	return nil
}

// SetInts stores int32 values (labels) in buffer id.
func (r *Ref) SetInts(id int, v []int) {
	d := r.Buf(id)
	for i, x := range v {
		d[i] = math.Float32frombits(uint32(int32(x)))
	}
}

func ints(v []float32) []int32 {
	out := make([]int32, len(v))
	for i, x := range v {
		out[i] = int32(math.Float32bits(x))
	}
	return out
}

// Run executes instructions [lo, hi).
func (r *Ref) Run(lo, hi int) error {
	for i := lo; i < hi; i++ {
		if err := r.exec(r.S.Instrs[i]); err != nil {
			return fmt.Errorf("instruction %d %v: %w", i, r.S.Instrs[i], err)
		}
	}
	return nil
}

// Step runs the whole step with learning rate lr.
func (r *Ref) Step(lr float64, first bool) error {
	h := r.Buf(r.S.Hyper)
	h[HyperLR] = float32(lr)
	h[HyperFirst] = 0
	if first {
		h[HyperFirst] = 1
	}
	return r.Run(0, len(r.S.Instrs))
}

// whole returns the arena from buffer id's offset on (for GEMM operands
// and the packed SGD runs, which span several buffers).
func (r *Ref) whole(id int) []float32 { return r.Arena[r.S.Bufs[id].Offset/ElemSize:] }

// exec runs one instruction: a GEMM, or a kernel of the catalog by its
// reference semantics (defined beside its lowering, in its family's file).
func (r *Ref) exec(in Instr) error {
	if in.Kernel == "gemm" {
		return refGemm(r, in)
	}
	k, ok := Kernels[in.Kernel]
	if !ok {
		return fmt.Errorf("no kernel %q", in.Kernel)
	}
	if len(in.Ints) != k.Ints || len(in.Floats) != k.Floats || len(in.Bufs) != k.Buffers {
		return fmt.Errorf("arguments %d/%d/%d, kernel takes %d/%d/%d", len(in.Ints), len(in.Floats), len(in.Bufs), k.Ints, k.Floats, k.Buffers)
	}
	b := make([][]float32, len(in.Bufs))
	for i, id := range in.Bufs {
		b[i] = r.Buf(id)
	}
	return k.ref(r, in, b)
}

// PutFloat64 stores v as the i-th double of a buffer of float32 words, low
// word first, as the device's little-endian doubles lie in memory.
func PutFloat64(buf []float32, i int, v float64) {
	u := math.Float64bits(v)
	buf[2*i] = math.Float32frombits(uint32(u))
	buf[2*i+1] = math.Float32frombits(uint32(u >> 32))
}

// Float64At reads the i-th double of a buffer of float32 words.
func Float64At(buf []float32, i int) float64 {
	return math.Float64frombits(uint64(math.Float32bits(buf[2*i])) | uint64(math.Float32bits(buf[2*i+1]))<<32)
}

// forChannels calls fn for each channel of an (n, c, inner) tensor with a
// visitor over the channel's element offsets in memory order.
func forChannels(a NCIArgs, fn func(ch int, at func(func(o int)))) {
	n, c, inner := a.N, a.C, a.Inner
	for ch := 0; ch < c; ch++ {
		fn(ch, func(visit func(o int)) {
			for bi := 0; bi < n; bi++ {
				base := (bi*c + ch) * inner
				for j := 0; j < inner; j++ {
					visit(base + j)
				}
			}
		})
	}
}
