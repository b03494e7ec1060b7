package train

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

func sampleTensors() map[string]*tensor.Dense {
	return map[string]*tensor.Dense{
		"conv/w":    tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float32{1, -2, 3.5, float32(math.Inf(1)), 0, -0.125})),
		"bn/mean":   tensor.New(tensor.WithShape(3), tensor.WithBacking([]float64{0.1, math.Pi, -1e300})),
		"counts":    tensor.New(tensor.WithShape(2, 1), tensor.WithBacking([]int64{-5, 1 << 40})),
		"labels":    tensor.New(tensor.WithShape(3), tensor.WithBacking([]int{7, -1, 0})),
		"small":     tensor.New(tensor.WithShape(1), tensor.WithBacking([]int32{42})),
		"scalar":    tensor.New(tensor.FromScalar(float32(2.5))),
		"nan/value": tensor.New(tensor.WithShape(1), tensor.WithBacking([]float64{math.NaN()})),
	}
}

func encode(t *testing.T, ts map[string]*tensor.Dense, meta map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := EncodeSafetensors(&b, ts, meta); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestSafetensorsRoundTrip(t *testing.T) {
	ts := sampleTensors()
	meta := map[string]string{"epoch": "3", "note": `quotes " and unicode ±`}
	b := encode(t, ts, meta)
	st, err := DecodeSafetensors(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Metadata) != 2 || st.Metadata["note"] != meta["note"] {
		t.Errorf("metadata %v", st.Metadata)
	}
	if len(st.Tensors) != len(ts) {
		t.Fatalf("%d tensors back, want %d", len(st.Tensors), len(ts))
	}
	for name, want := range ts {
		got := st.Tensors[name]
		if !got.Shape().Eq(want.Shape()) {
			t.Errorf("%s: shape %v, want %v", name, got.Shape(), want.Shape())
		}
		if storedAs(got.Dtype()) != storedAs(want.Dtype()) {
			t.Errorf("%s: dtype %v, want %v", name, got.Dtype(), want.Dtype())
		}
		gb, wb := encode(t, map[string]*tensor.Dense{"t": got}, nil), encode(t, map[string]*tensor.Dense{"t": want}, nil)
		if !bytes.Equal(gb, wb) {
			t.Errorf("%s: contents differ", name)
		}
	}
}

// TestSafetensorsLayout checks the rules of the reference implementation:
// an 8-aligned JSON header, entries of dtype/shape/data_offsets, and offsets
// that tile the data section.
func TestSafetensorsLayout(t *testing.T) {
	b := encode(t, sampleTensors(), map[string]string{"k": "v"})
	n := binary.LittleEndian.Uint64(b)
	if n%8 != 0 || b[8] != '{' {
		t.Errorf("header length %d, first byte %q", n, b[8])
	}
	var h map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &h); err != nil {
		t.Fatal(err)
	}
	var meta map[string]string
	if err := json.Unmarshal(h["__metadata__"], &meta); err != nil || meta["k"] != "v" {
		t.Errorf("metadata %s: %v", h["__metadata__"], err)
	}
	var w map[string]any
	json.Unmarshal(h["conv/w"], &w)
	if len(w) != 3 || w["dtype"] != "F32" || !strings.Contains(string(h["conv/w"]), `"shape":[2,3]`) {
		t.Errorf("entry %s", h["conv/w"])
	}
	if !strings.Contains(string(h["scalar"]), `"shape":[]`) {
		t.Errorf("scalar entry %s", h["scalar"])
	}
	// Name order: bn/mean (24 bytes) comes first, then conv/w.
	if !strings.Contains(string(h["conv/w"]), `"data_offsets":[24,48]`) {
		t.Errorf("conv/w entry %s", h["conv/w"])
	}
	if got := uint64(len(b)) - 8 - n; got != 24+16+24+24+8+4+4 {
		t.Errorf("data section %d bytes", got)
	}
}

// TestSafetensorsReadsForeignLayout decodes a file laid out as another
// writer might: metadata last, tensors out of name order.
func TestSafetensorsReadsForeignLayout(t *testing.T) {
	header := `{"b":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"a":{"dtype":"I32","shape":[2,2],"data_offsets":[8,24]},"__metadata__":{"format":"pt"}}`
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(header)))
	b.WriteString(header)
	binary.Write(&b, binary.LittleEndian, 1.5)
	binary.Write(&b, binary.LittleEndian, []int32{1, 2, 3, 4})
	st, err := DecodeSafetensors(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if st.Tensors["b"].Float64s()[0] != 1.5 || st.Tensors["a"].Int32s()[3] != 4 || st.Metadata["format"] != "pt" {
		t.Errorf("decoded %v %v %v", st.Tensors["b"], st.Tensors["a"], st.Metadata)
	}
}

func TestSafetensorsRejectsCorruptFiles(t *testing.T) {
	good := encode(t, sampleTensors(), map[string]string{"k": "v"})
	n := binary.LittleEndian.Uint64(good)
	withHeader := func(h string) []byte {
		var b bytes.Buffer
		binary.Write(&b, binary.LittleEndian, uint64(len(h)))
		b.WriteString(h)
		b.Write(make([]byte, 8))
		return b.Bytes()
	}
	cases := map[string][]byte{
		"empty":            nil,
		"short":            good[:5],
		"truncated header": good[:8+n/2],
		"truncated data":   good[:len(good)-3],
		"extra data":       append(append([]byte{}, good...), 1, 2, 3),
		"huge header":      append([]byte{0, 0, 0, 0, 0, 0, 0, 1}, good[8:]...),
		"not json":         withHeader("{nonsense}"),
		"not an object":    withHeader(`["a"]   `),
		"bad dtype":        withHeader(`{"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}}`),
		"size mismatch":    withHeader(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`),
		"past the end":     withHeader(`{"a":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}`),
		"negative dim":     withHeader(`{"a":{"dtype":"F64","shape":[-1],"data_offsets":[0,8]}}`),
		"overlap":          withHeader(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`),
		"bad metadata":     withHeader(`{"__metadata__":{"k":1},"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}`),
	}
	for name, b := range cases {
		if _, err := DecodeSafetensors(b); err == nil {
			t.Errorf("%s: no error", name)
		} else if name == "size mismatch" && !strings.Contains(err.Error(), `tensor "a"`) {
			t.Errorf("%s: error %q does not name the tensor", name, err)
		}
	}
	path := filepath.Join(t.TempDir(), "broken.safetensors")
	os.WriteFile(path, good[:len(good)/2], 0o644)
	if _, err := ReadSafetensors(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v does not name the file", err)
	}
}

// TestSafetensorsRandomCorruption flips and truncates bytes: decoding must
// fail cleanly or succeed, never panic.
func TestSafetensorsRandomCorruption(t *testing.T) {
	good := encode(t, sampleTensors(), map[string]string{"k": "v"})
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		b := append([]byte{}, good...)
		switch i % 3 {
		case 0:
			for k := 0; k < 1+r.IntN(4); k++ {
				b[r.IntN(len(b))] ^= byte(1 + r.IntN(255))
			}
		case 1:
			b = b[:r.IntN(len(b))]
		case 2:
			b[r.IntN(8)] = byte(r.IntN(256))
		}
		DecodeSafetensors(b)
	}
}

func FuzzDecodeSafetensors(f *testing.F) {
	var b bytes.Buffer
	EncodeSafetensors(&b, sampleTensors(), map[string]string{"k": "v"})
	f.Add(b.Bytes())
	f.Add([]byte{})
	f.Add([]byte("\x02\x00\x00\x00\x00\x00\x00\x00{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := DecodeSafetensors(data)
		if err != nil {
			return
		}
		// Whatever decodes must encode and decode to the same tensors.
		var out bytes.Buffer
		if err := EncodeSafetensors(&out, st.Tensors, st.Metadata); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := DecodeSafetensors(out.Bytes())
		if err != nil || len(again.Tensors) != len(st.Tensors) {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

// TestSafetensorsPython loads a file with the reference Python package when
// it is installed (pip install safetensors numpy); it is skipped otherwise.
func TestSafetensorsPython(t *testing.T) {
	if exec.Command("python3", "-c", "import safetensors.numpy").Run() != nil {
		t.Skip("python3 with safetensors and numpy is not installed")
	}
	path := filepath.Join(t.TempDir(), "x.safetensors")
	ts := sampleTensors()
	delete(ts, "labels")
	if err := WriteSafetensors(path, ts, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	script := `
import sys, math
from safetensors.numpy import load_file
from safetensors import safe_open
t = load_file(sys.argv[1])
assert t["conv/w"].shape == (2, 3) and t["conv/w"][0, 2] == 3.5, t["conv/w"]
assert t["counts"][1, 0] == 1 << 40 and t["scalar"].shape == ()
with safe_open(sys.argv[1], "np") as f:
    assert f.metadata() == {"k": "v"}, f.metadata()
`
	if out, err := exec.Command("python3", "-c", script, path).CombinedOutput(); err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
}
