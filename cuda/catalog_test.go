package cuda

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/graph/ops"
)

// TestEveryOpHasALowering fails when graph/ops gains a kind of op that has
// neither device kernels (lowerings) nor an entry in pending saying why not.
// (graph/ops's TestEveryOpDescribesItself checks every op has a kind.)
func TestEveryOpHasALowering(t *testing.T) {
	kinds := ops.Kinds()
	if len(kinds) < 30 {
		t.Fatalf("found only %d kinds of op in graph/ops: %v", len(kinds), kinds)
	}
	for _, k := range kinds {
		if k == ops.KindPin {
			continue // pins alias their input's buffer
		}
		_, low := lowerings[k]
		_, pend := pending[k]
		switch {
		case !low && !pend:
			t.Errorf("op kind %v of graph/ops has no device lowering (add it to lowerings in cuda/lower.go, or to pending with the reason)", k)
		case low && pend:
			t.Errorf("op kind %v is both lowered and pending", k)
		}
	}
	for k := range lowerings {
		if !slices.Contains(kinds, k) || k == ops.KindPin {
			t.Errorf("lowerings names %v, which graph/ops does not lower", k)
		}
	}
	for k := range pending {
		if !slices.Contains(kinds, k) {
			t.Errorf("pending names %v, which graph/ops no longer has", k)
		}
	}
}

// TestCatalogMatchesSource checks every kernel of kernels/ops.cu against
// the catalog: same names, and the parameter list is Ints int parameters,
// then Floats float parameters, then Buffers pointers.
func TestCatalogMatchesSource(t *testing.T) {
	src, err := os.ReadFile("kernels/ops.cu")
	if err != nil {
		t.Fatal(err)
	}
	names, params, err := kernelSignatures(src)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, name := range names {
		found[name] = true
		k, ok := Kernels[name]
		if !ok {
			t.Errorf("kernel %s of ops.cu is not in the catalog", name)
			continue
		}
		var kinds, want []string
		for _, p := range params[name] {
			kinds = append(kinds, p.kind)
		}
		for i := 0; i < k.Ints; i++ {
			want = append(want, "int")
		}
		for i := 0; i < k.Floats; i++ {
			want = append(want, "float")
		}
		for i := 0; i < k.Buffers; i++ {
			want = append(want, "ptr")
		}
		if strings.Join(kinds, ",") != strings.Join(want, ",") {
			t.Errorf("kernel %s: ops.cu parameters %v, catalog %v", name, kinds, want)
		}
	}
	for name := range Kernels {
		if !found[name] {
			t.Errorf("catalog kernel %s is not in ops.cu", name)
		}
	}
}

// TestPTXIsCurrent checks the committed PTX has an entry for every kernel
// (its targets and source hash: package kernels' tests).
func TestPTXIsCurrent(t *testing.T) {
	ptx, err := os.ReadFile("kernels/ops.ptx")
	if err != nil {
		t.Fatal(err)
	}
	for name := range Kernels {
		if !strings.Contains(string(ptx), ".entry "+name+"(") {
			t.Errorf("ops.ptx has no entry %s: run go generate ./cuda/kernels", name)
		}
	}
}

// TestKernelArgsRoundTrip: every kernel of the catalog has reference
// semantics, and an argument struct's encoding decodes to itself (one
// params list serves both ways).
func TestKernelArgsRoundTrip(t *testing.T) {
	for name, k := range Kernels {
		if k.ref == nil || k.Launch == nil {
			t.Errorf("kernel %s has no reference semantics or launch rule", name)
		}
	}
	a := Im2colArgs{N: 1, C: 2, H: 3, W: 4, KH: 5, KW: 6, SH: 7, SW: 8, PH: 9, PW: 10, OH: 11, OW: 12}
	in := im2col.instr(a, []int{0, 1}, []int{1})
	if in.Kernel != "im2col" || len(in.Ints) != Kernels["im2col"].Ints || in.Ints[0] != 1 || in.Ints[11] != 12 {
		t.Fatalf("im2col encodes as %v", in)
	}
	if got, err := decodeArgs[Im2colArgs](in.Ints, in.Floats); err != nil || got != a {
		t.Errorf("im2col decodes to %+v, %v; want %+v", got, err, a)
	}
	d := DropoutArgs{N: 5, SeedLo: 6, SeedHi: 7, Slot: 8, Threshold: 9, Scale: 1.25}
	in = dropoutApply.instr(d, []int{0, 1, 2}, []int{2})
	if got, err := decodeArgs[DropoutArgs](in.Ints, in.Floats); err != nil || got != d {
		t.Errorf("dropout_apply decodes to %+v, %v; want %+v", got, err, d)
	}
	if _, err := decodeArgs[DropoutArgs](in.Ints[1:], in.Floats); err == nil {
		t.Error("decoding accepted too few ints")
	}
	if err := NewRef(&Step{}).exec(Instr{Kernel: "relu_fwd", Ints: []int{1, 2}, Bufs: []int{0, 1}}); err == nil {
		t.Error("the interpreter ran a kernel with the wrong argument count")
	}
}
