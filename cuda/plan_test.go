package cuda

import (
	"testing"
)

func TestLaunchMaths(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want Dim
	}{{1, Dim{1, 256, 0}}, {256, Dim{1, 256, 0}}, {257, Dim{2, 256, 0}}, {1 << 30, Dim{MaxGrid, 256, 0}}, {0, Dim{1, 256, 0}}} {
		if got := gridStride(tc.n); got != tc.want {
			t.Errorf("gridStride(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
	if d := perItem(1000); d.Grid*d.Block < 1000 || (d.Grid-1)*d.Block >= 1000 {
		t.Errorf("perItem(1000) = %v", d)
	}
	// Channel reductions: one block per (channel, chunk of images), each
	// block about reduceChunk elements, so 16 channels still fill the device.
	for _, tc := range []struct{ n, c, inner, chunk, grid int }{
		{128, 16, 1024, 4, 16 * 32}, {128, 64, 64, 64, 64 * 2}, {16, 16, 1024, 4, 16 * 4}, {3, 8, 50176, 1, 8 * 3}, {1, 1, 1, 4096, 1},
	} {
		if got := ChannelChunk(tc.inner); got != tc.chunk {
			t.Errorf("ChannelChunk(%d) = %d, want %d", tc.inner, got, tc.chunk)
		}
		if d := Kernels["bn_stats_part"].Launch([]int{tc.n, tc.c, tc.inner, tc.chunk}); d.Grid != tc.grid || d.Block != BlockSize {
			t.Errorf("bn_stats_part launch %v for %+v, want %d blocks", d, tc, tc.grid)
		}
	}
	// Every catalog launch covers its work with in-range sizes.
	for name, k := range Kernels {
		ints := make([]int, k.Ints)
		for i := range ints {
			ints[i] = 3
		}
		d := k.Launch(ints)
		if d.Grid < 1 || d.Block < 1 || d.Block > 1024 || d.Grid > 1<<31-1 {
			t.Errorf("%s: launch %v", name, d)
		}
	}
}

func TestGemmColumnMajor(t *testing.T) {
	g := GemmArgs{TransB: true, M: 2, N: 3, K: 4, LDA: 4, LDB: 4, LDC: 3, Batch: 1}
	c := g.ColumnMajor()
	if c.M != 3 || c.N != 2 || c.K != 4 || !c.TransA || c.TransB || c.LDA != 4 || c.LDB != 4 || c.LDC != 3 {
		t.Errorf("column-major call %+v", c)
	}
	if err := g.Validate(8, 12, 6); err != nil {
		t.Error(err)
	}
	if err := g.Validate(7, 12, 6); err == nil {
		t.Error("A of 7 elements accepted for a 2x4 operand")
	}
	if g2, err := DecodeGemm(g.Ints()); err != nil || g2 != g {
		t.Errorf("decode %v %v", g2, err)
	}
}

// TestPlanInvariants checks, on a planned ResNet-20 step (fp32 and bf16:
// two-byte elements), that buffers live at the same time never overlap,
// that every buffer is aligned, that persistent buffers are disjoint from
// everything, and that sharing saves memory.
func TestPlanInvariants(t *testing.T) {
	for _, prec := range []Precision{FP32, BF16} {
		t.Run(string(prec), func(t *testing.T) { checkPlanInvariants(t, prec) })
	}
}

func checkPlanInvariants(t *testing.T, prec Precision) {
	_, p, _, _ := build(t, "resnet-20", 8, false)
	s, err := Lower(p, benchSGD, prec)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Plan(); err != nil {
		t.Fatal(err)
	}
	live := func(b *Buf) (int, int) {
		if b.Kind.Persistent() {
			return -1, len(s.Instrs) + 1
		}
		return b.First, b.Last
	}
	for i, a := range s.Bufs {
		if a.Offset < 0 {
			continue
		}
		if a.Offset+a.Bytes() > s.ArenaBytes {
			t.Fatalf("%s ends past the arena", a.Name)
		}
		packed := a.Kind == Param || a.Kind == Grad || a.Kind == Velocity
		if !packed && a.Offset%Alignment != 0 {
			t.Errorf("%s at %d is not %d-aligned", a.Name, a.Offset, Alignment)
		}
		for _, b := range s.Bufs[i+1:] {
			if b.Offset < 0 {
				continue
			}
			af, al := live(a)
			bf, bl := live(b)
			if af <= bl && bf <= al && a.Offset < b.Offset+b.Bytes() && b.Offset < a.Offset+a.Bytes() {
				t.Errorf("%s [%d,%d] and %s [%d,%d] overlap in memory", a.Name, af, al, b.Name, bf, bl)
			}
		}
	}
	tr := s.TransientBytes()
	if s.ArenaBytes >= tr {
		t.Errorf("arena %d bytes, no smaller than the unshared transients %d", s.ArenaBytes, tr)
	}
	t.Logf("arena %.2f MiB, transients unshared %.2f MiB", float64(s.ArenaBytes)/(1<<20), float64(tr)/(1<<20))
}

func TestPlanRejectsReadBeforeWrite(t *testing.T) {
	s := &Step{}
	a := s.buf("a", 4, Activation)
	b := s.buf("b", 4, Activation)
	s.emit(Instr{Kernel: "relu_fwd", Ints: []int{4}, Bufs: []int{a, b}, Writes: []int{b}})
	if err := s.Plan(); err == nil {
		t.Error("plan accepted a read of a never-written activation")
	}
}
