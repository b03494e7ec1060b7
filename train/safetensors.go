package train

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"

	"gorgonia.org/tensor"
)

// Safetensors is the content of a file in the safetensors format
// (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON header mapping each tensor name to its
// dtype, shape and data_offsets (relative to the data section), with an
// optional "__metadata__" map of strings, then the little-endian, row-major
// tensor data. Files written here load with safetensors.torch.load_file.
type Safetensors struct {
	Tensors  map[string]*tensor.Dense
	Metadata map[string]string
}

// maxHeader bounds the JSON header, as the reference implementation does.
const maxHeader = 100 << 20

type stEntry struct {
	Dtype       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets []uint64 `json:"data_offsets"`
}

// stDtype maps tensor dtypes to safetensors dtype names and element sizes.
func stDtype(dt tensor.Dtype) (string, int, error) {
	switch dt {
	case tensor.Float32:
		return "F32", 4, nil
	case tensor.Float64:
		return "F64", 8, nil
	case tensor.Int64:
		return "I64", 8, nil
	case tensor.Int:
		if strconv.IntSize == 64 {
			return "I64", 8, nil
		}
		return "I32", 4, nil
	case tensor.Int32:
		return "I32", 4, nil
	}
	return "", 0, fmt.Errorf("dtype %v cannot be stored (F32, F64, I64 and I32 can)", dt)
}

// EncodeSafetensors writes tensors and metadata in the safetensors format.
// Tensors are laid out in name order; the header is padded with spaces to
// a multiple of 8 bytes.
func EncodeSafetensors(w io.Writer, tensors map[string]*tensor.Dense, meta map[string]string) error {
	names := make([]string, 0, len(tensors))
	for name := range tensors {
		if name == "__metadata__" {
			return errors.New("safetensors: a tensor may not be named __metadata__")
		}
		names = append(names, name)
	}
	sort.Strings(names)
	header := map[string]any{}
	if len(meta) > 0 {
		header["__metadata__"] = meta
	}
	var off uint64
	for _, name := range names {
		t := tensors[name]
		if t == nil {
			return fmt.Errorf("safetensors: tensor %q is nil", name)
		}
		dt, size, err := stDtype(t.Dtype())
		if err != nil {
			return fmt.Errorf("safetensors: tensor %q: %w", name, err)
		}
		shape := []int(t.Shape())
		if shape == nil || t.IsScalar() {
			shape = []int{}
		}
		n := uint64(t.Size()) * uint64(size)
		header[name] = stEntry{Dtype: dt, Shape: shape, DataOffsets: []uint64{off, off + n}}
		off += n
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("safetensors: header: %w", err)
	}
	if pad := (8 - len(hj)%8) % 8; pad > 0 {
		hj = append(hj, bytes.Repeat([]byte(" "), pad)...)
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hj)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return err
	}
	if _, err := w.Write(hj); err != nil {
		return err
	}
	buf := make([]byte, 0, 1<<16)
	flush := func() error {
		_, err := w.Write(buf)
		buf = buf[:0]
		return err
	}
	for _, name := range names {
		t := tensors[name]
		var err error
		switch t.Dtype() {
		case tensor.Float32:
			err = putElems(&buf, flush, t.Float32s(), func(b []byte, v float32) []byte { return binary.LittleEndian.AppendUint32(b, math.Float32bits(v)) })
		case tensor.Float64:
			err = putElems(&buf, flush, t.Float64s(), func(b []byte, v float64) []byte { return binary.LittleEndian.AppendUint64(b, math.Float64bits(v)) })
		case tensor.Int64:
			err = putElems(&buf, flush, t.Int64s(), func(b []byte, v int64) []byte { return binary.LittleEndian.AppendUint64(b, uint64(v)) })
		case tensor.Int32:
			err = putElems(&buf, flush, t.Int32s(), func(b []byte, v int32) []byte { return binary.LittleEndian.AppendUint32(b, uint32(v)) })
		case tensor.Int:
			if strconv.IntSize == 64 {
				err = putElems(&buf, flush, t.Ints(), func(b []byte, v int) []byte { return binary.LittleEndian.AppendUint64(b, uint64(v)) })
			} else {
				err = putElems(&buf, flush, t.Ints(), func(b []byte, v int) []byte { return binary.LittleEndian.AppendUint32(b, uint32(v)) })
			}
		}
		if err != nil {
			return err
		}
	}
	return flush()
}

func putElems[T any](buf *[]byte, flush func() error, xs []T, put func([]byte, T) []byte) error {
	for _, x := range xs {
		*buf = put(*buf, x)
		if len(*buf) >= 1<<16 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// DecodeSafetensors parses a whole safetensors file. It checks the header
// length, that the header is a JSON object of well-formed entries, that
// every tensor's byte range matches its dtype and shape, and that the
// ranges tile the data section exactly. Errors name the offending tensor.
func DecodeSafetensors(b []byte) (*Safetensors, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("file is %d bytes, too short for a safetensors header", len(b))
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > maxHeader {
		return nil, fmt.Errorf("header length %d exceeds the limit of %d bytes (not a safetensors file?)", n, maxHeader)
	}
	if n > uint64(len(b)-8) {
		return nil, fmt.Errorf("header length %d exceeds the file's remaining %d bytes (truncated?)", n, len(b)-8)
	}
	hj, data := b[8:8+n], b[8+n:]
	if len(bytes.TrimSpace(hj)) == 0 || bytes.TrimSpace(hj)[0] != '{' {
		return nil, errors.New("header is not a JSON object")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hj, &raw); err != nil {
		return nil, fmt.Errorf("header is not valid JSON: %w", err)
	}
	st := &Safetensors{Tensors: map[string]*tensor.Dense{}, Metadata: map[string]string{}}
	type span struct {
		name   string
		lo, hi uint64
	}
	var spans []span
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &st.Metadata); err != nil {
				return nil, fmt.Errorf("__metadata__ is not a map of strings: %w", err)
			}
			continue
		}
		var e stEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("tensor %q: malformed header entry: %w", name, err)
		}
		if len(e.DataOffsets) != 2 || e.DataOffsets[0] > e.DataOffsets[1] || e.DataOffsets[1] > uint64(len(data)) {
			return nil, fmt.Errorf("tensor %q: data_offsets %v outside the %d-byte data section", name, e.DataOffsets, len(data))
		}
		size := map[string]uint64{"F32": 4, "F64": 8, "I64": 8, "I32": 4}[e.Dtype]
		if size == 0 {
			return nil, fmt.Errorf("tensor %q: unsupported dtype %q (F32, F64, I64 and I32 are read)", name, e.Dtype)
		}
		count := uint64(1)
		for _, d := range e.Shape {
			if d < 0 {
				return nil, fmt.Errorf("tensor %q: negative dimension in shape %v", name, e.Shape)
			}
			if d > 0 && count > math.MaxInt32*uint64(1<<16)/uint64(d) {
				return nil, fmt.Errorf("tensor %q: shape %v is too large", name, e.Shape)
			}
			count *= uint64(d)
		}
		lo, hi := e.DataOffsets[0], e.DataOffsets[1]
		if hi-lo != count*size {
			return nil, fmt.Errorf("tensor %q: %s shape %v needs %d bytes, data_offsets %v give %d", name, e.Dtype, e.Shape, count*size, e.DataOffsets, hi-lo)
		}
		t, err := decodeTensor(e.Dtype, e.Shape, int(count), data[lo:hi])
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		st.Tensors[name] = t
		spans = append(spans, span{name, lo, hi})
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].lo != spans[j].lo {
			return spans[i].lo < spans[j].lo
		}
		return spans[i].hi < spans[j].hi
	})
	var end uint64
	for _, s := range spans {
		if s.lo != end {
			return nil, fmt.Errorf("tensor %q: data_offsets [%d, %d] leave a gap or overlap at byte %d of the data section", s.name, s.lo, s.hi, end)
		}
		end = s.hi
	}
	if end != uint64(len(data)) {
		return nil, fmt.Errorf("data section has %d bytes, the tensors use %d", len(data), end)
	}
	return st, nil
}

func decodeTensor(dtype string, shape []int, count int, b []byte) (*tensor.Dense, error) {
	var back any
	switch dtype {
	case "F32":
		xs := make([]float32, count)
		for i := range xs {
			xs[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		back = xs
	case "F64":
		xs := make([]float64, count)
		for i := range xs {
			xs[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		}
		back = xs
	case "I64":
		xs := make([]int64, count)
		for i := range xs {
			xs[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
		}
		back = xs
	case "I32":
		xs := make([]int32, count)
		for i := range xs {
			xs[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
		}
		back = xs
	}
	if count == 0 {
		// Gorgonia's tensors cannot be empty; keep the shape with no data.
		return nil, fmt.Errorf("empty tensors (shape %v) are not supported", shape)
	}
	return tensor.New(tensor.WithShape(append([]int{}, shape...)...), tensor.WithBacking(back)), nil
}

// WriteSafetensors writes a safetensors file atomically (WriteFileAtomic).
func WriteSafetensors(path string, tensors map[string]*tensor.Dense, meta map[string]string) error {
	return WriteFileAtomic(path, func(w io.Writer) error { return EncodeSafetensors(w, tensors, meta) })
}

// ReadSafetensors reads and checks a safetensors file; errors name the file.
func ReadSafetensors(path string) (*Safetensors, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	st, err := DecodeSafetensors(b)
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid safetensors file: %w", path, err)
	}
	return st, nil
}
