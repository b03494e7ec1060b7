package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/eraserelu/eraserelu/graph"
	"gorgonia.org/tensor"
)

// RNGStater is implemented by ops that draw random numbers while training
// (dropout, stochastic depth). Checkpoints save the state of every such op
// of the graph, in graph order, and restore it on resume.
type RNGStater interface {
	RNGState() ([]byte, error)
	SetRNGState([]byte) error
}

// CheckpointFormat is the value of the "format" metadata key. Version 2
// added the checksum; version 1 files (no checksum) are refused, since
// their bytes cannot be verified.
const CheckpointFormat = "eraserelu-checkpoint/2"

// ChecksumKey is the metadata key of a checkpoint's checksum:
// "sha256:" and 64 hex digits, the SHA-256 of the whole file (length
// prefix, header and data) as written with those 64 digits all '0'.
// Hashing the file's own bytes, rather than a re-encoding of what was
// decoded, makes every changed byte count, header padding included.
const ChecksumKey = "checksum"

const checksumPrefix = "sha256:"

// zeroDigest stands in for the digest while it is computed.
var zeroDigest = bytes.Repeat([]byte("0"), sha256.Size*2)

// CorruptCheckpointError reports a checkpoint whose bytes cannot be
// trusted: unreadable, not a safetensors file, no checksum, or a checksum
// that does not match. A resume falls back to an older checkpoint on it;
// other errors (a checkpoint of another network) it reports at once.
type CorruptCheckpointError struct {
	Path string
	Err  error
}

func (e *CorruptCheckpointError) Error() string {
	return fmt.Sprintf("checkpoint %s: %v", e.Path, e.Err)
}

func (e *CorruptCheckpointError) Unwrap() error { return e.Err }

// VelocityPrefix prefixes the names of the optimizer's velocity tensors.
const VelocityPrefix = "optim.velocity."

// State is where a run stands, as a checkpoint records it besides the
// tensors. Epoch and Batch locate the next step: Batch batches of the
// 0-based Epoch have been trained.
type State struct {
	Epoch      int
	Batch      int
	Step       int
	Seed       uint64
	ConfigHash string
	// Config is the resolved config of the run (JSON in the file).
	Config Config
	// History holds the metrics of the finished epochs.
	History []EpochMetrics
	// Running holds the training metrics of the epoch in progress.
	Running Running
	// LastLoss is the last training loss, finite.
	LastLoss float64
	// Identity is Options.Identity of the run: what besides Config decides
	// its results.
	Identity map[string]string
	// Backend is a StatefulBackend's own state at the checkpoint (the CUDA
	// path's fp16 loss scaler), restored into it before Load on resume.
	Backend map[string]string
}

// Running accumulates running averages of the training metrics over an epoch.
type Running struct {
	LossSum  float64 `json:"loss_sum"` // sum over batches of loss * weight
	Weight   int     `json:"weight"`   // examples weighing the losses
	Correct1 int     `json:"correct1"`
	Correct5 int     `json:"correct5"`
	Scored   int     `json:"scored"` // examples counted by the Scorer
	Examples int     `json:"examples"`
	Seconds  float64 `json:"seconds"`
}

// RNGOps lists the ops of the graph that implement RNGStater, in graph order.
func RNGOps(g *graph.Graph) []RNGStater {
	var out []RNGStater
	seen := map[any]bool{}
	for _, n := range g.Expr().AllNodes() {
		op := n.Op()
		if op == nil {
			continue
		}
		rs, ok := op.(RNGStater)
		if !ok {
			continue
		}
		if reflect.TypeOf(op).Comparable() {
			if seen[op] {
				continue
			}
			seen[op] = true
		}
		out = append(out, rs)
	}
	return out
}

// CheckpointTensors collects what a checkpoint stores: each parameter under
// its name, each buffer (batch-norm running statistics) under its name and,
// with an optimizer, each velocity under VelocityPrefix + name.
func CheckpointTensors(g *graph.Graph, opt *SGD) (map[string]*tensor.Dense, error) {
	ts := map[string]*tensor.Dense{}
	add := func(name string, t *tensor.Dense) error {
		if _, dup := ts[name]; dup {
			return fmt.Errorf("two tensors are named %q", name)
		}
		if t == nil {
			return fmt.Errorf("tensor %q has no value", name)
		}
		ts[name] = t
		return nil
	}
	for _, p := range g.Params() {
		w, err := paramValue(p)
		if err != nil {
			return nil, err
		}
		if err := add(p.Name, w); err != nil {
			return nil, err
		}
	}
	for _, b := range g.Buffers() {
		if err := add(b.Name, b.Value); err != nil {
			return nil, err
		}
	}
	if opt != nil {
		for i, p := range opt.params {
			if err := add(VelocityPrefix+p.Name, opt.vel[i]); err != nil {
				return nil, err
			}
		}
	}
	return ts, nil
}

// SaveCheckpoint writes the graph's parameters and buffers, the optimizer's
// velocities (opt may be nil), the RNG state of the graph's ops and st to
// path in the safetensors format, atomically, with a checksum
// (ChecksumKey). Metadata keys: format, checksum, epoch, batch, step, seed,
// config_hash, config, history, running, last_loss, optim.started, rng.<i>
// (base64) with rng.<i>.op naming the op, and identity.<key>.
func SaveCheckpoint(path string, g *graph.Graph, opt *SGD, st State) error {
	return saveCheckpoint(path, "", g, opt, st)
}

// RotateCheckpoint is SaveCheckpoint that keeps the checkpoint it replaces
// as prev (WriteFileRotating): a failed or torn write leaves both.
func RotateCheckpoint(path, prev string, g *graph.Graph, opt *SGD, st State) error {
	return saveCheckpoint(path, prev, g, opt, st)
}

func saveCheckpoint(path, prev string, g *graph.Graph, opt *SGD, st State) error {
	ts, err := CheckpointTensors(g, opt)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	cfg, err := json.Marshal(st.Config)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	hist, err := json.Marshal(st.History)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	run, err := json.Marshal(st.Running)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	meta := map[string]string{
		"format":      CheckpointFormat,
		"epoch":       strconv.Itoa(st.Epoch),
		"batch":       strconv.Itoa(st.Batch),
		"step":        strconv.Itoa(st.Step),
		"seed":        strconv.FormatUint(st.Seed, 10),
		"config_hash": st.ConfigHash,
		"config":      string(cfg),
		"history":     string(hist),
		"running":     string(run),
		"last_loss":   strconv.FormatFloat(st.LastLoss, 'g', -1, 64),
		"dtype":       g.Dtype().String(),
	}
	if opt != nil {
		meta["optim.started"] = strconv.FormatBool(opt.Started())
	}
	for i, r := range RNGOps(g) {
		b, err := r.RNGState()
		if err != nil {
			return fmt.Errorf("checkpoint %s: RNG state of op %d (%v): %w", path, i, r, err)
		}
		meta["rng."+strconv.Itoa(i)] = base64.StdEncoding.EncodeToString(b)
		meta["rng."+strconv.Itoa(i)+".op"] = fmt.Sprint(r)
	}
	for k, v := range st.Identity {
		meta[identityPrefix+k] = v
	}
	for k, v := range st.Backend {
		meta[backendPrefix+k] = v
	}
	write, err := checksummed(ts, meta)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if prev == "" {
		return WriteFileAtomic(path, write)
	}
	return WriteFileRotating(path, prev, write)
}

// identityPrefix prefixes the metadata keys of State.Identity, and
// backendPrefix those of State.Backend.
const identityPrefix, backendPrefix = "identity.", "backend."

// checksummed encodes the checkpoint twice: once into a hash with the
// digest zeroed, then, returned as a writer function, with the digest.
// The encoding is deterministic (sorted names and keys), so the two
// passes differ only in the 64 digits.
func checksummed(ts map[string]*tensor.Dense, meta map[string]string) (func(io.Writer) error, error) {
	meta[ChecksumKey] = checksumPrefix + string(zeroDigest)
	h := sha256.New()
	if err := EncodeSafetensors(h, ts, meta); err != nil {
		return nil, err
	}
	meta[ChecksumKey] = checksumPrefix + hex.EncodeToString(h.Sum(nil))
	return func(w io.Writer) error { return EncodeSafetensors(w, ts, meta) }, nil
}

// VerifyChecksum checks the checksum a checkpoint file's header carries
// against its bytes b. It finds the digest in the raw header, so it needs
// nothing decoded.
func VerifyChecksum(b []byte) error {
	if len(b) < 8 {
		return fmt.Errorf("file is %d bytes, too short for a safetensors header", len(b))
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > uint64(len(b)-8) {
		return fmt.Errorf("header length %d exceeds the file's remaining %d bytes (truncated?)", n, len(b)-8)
	}
	header := b[8 : 8+n]
	key := []byte(`"` + ChecksumKey + `":"` + checksumPrefix)
	i := bytes.Index(header, key)
	if i < 0 || bytes.Index(header[i+1:], key) >= 0 {
		return fmt.Errorf("no checksum in the header (want one %q metadata entry; a checkpoint written before %s has none and cannot be verified)", ChecksumKey, CheckpointFormat)
	}
	lo := 8 + i + len(key)
	hi := lo + len(zeroDigest)
	if hi >= 8+len(header) || b[hi] != '"' {
		return errors.New("the checksum entry is malformed")
	}
	stored := string(b[lo:hi])
	h := sha256.New()
	hashParts(h, b[:lo], zeroDigest, b[hi:])
	if got := hex.EncodeToString(h.Sum(nil)); got != stored {
		return fmt.Errorf("checksum mismatch: the file's bytes hash to sha256:%s, its header says sha256:%s (the file changed after it was written)", got, stored)
	}
	return nil
}

func hashParts(h hash.Hash, parts ...[]byte) {
	for _, p := range parts {
		h.Write(p)
	}
}

// ReadCheckpointFile reads a checkpoint file once, verifies its checksum
// and decodes it from the same bytes, so nothing unverified is used. Its
// errors are *CorruptCheckpointError.
func ReadCheckpointFile(path string) (*Safetensors, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &CorruptCheckpointError{Path: path, Err: fmt.Errorf("unreadable: %w", err)}
	}
	return decodeCheckpoint(path, b)
}

// decodeCheckpoint is ReadCheckpointFile on the file's bytes b.
func decodeCheckpoint(path string, b []byte) (*Safetensors, error) {
	if err := VerifyChecksum(b); err != nil {
		return nil, &CorruptCheckpointError{Path: path, Err: err}
	}
	st, err := DecodeSafetensors(b)
	if err != nil {
		return nil, &CorruptCheckpointError{Path: path, Err: fmt.Errorf("not a valid safetensors file: %w", err)}
	}
	return st, nil
}

// LoadCheckpoint restores a checkpoint written by SaveCheckpoint into the
// graph (parameters, buffers, op RNG states) and, when opt is not nil, the
// optimizer. Everything is checked before anything is changed: the
// checksum (a failure is a *CorruptCheckpointError), then a missing
// tensor, a tensor of another shape or dtype, or one the graph does not
// have is an error naming the file and the tensor.
func LoadCheckpoint(path string, g *graph.Graph, opt *SGD) (State, error) {
	st, err := ReadCheckpointFile(path)
	if err != nil {
		return State{}, err
	}
	fail := func(format string, args ...any) (State, error) {
		return State{}, fmt.Errorf("checkpoint %s: %s", path, fmt.Sprintf(format, args...))
	}
	if f := st.Metadata["format"]; f != CheckpointFormat {
		return fail("format %q, want %q", f, CheckpointFormat)
	}
	want, err := CheckpointTensors(g, opt)
	if err != nil {
		return fail("%v", err)
	}
	for name, dst := range want {
		src, ok := st.Tensors[name]
		if !ok {
			return fail("tensor %q is missing", name)
		}
		if !src.Shape().Eq(dst.Shape()) {
			return fail("tensor %q has shape %v, the graph's has %v", name, src.Shape(), dst.Shape())
		}
		if storedAs(src.Dtype()) != storedAs(dst.Dtype()) {
			return fail("tensor %q has dtype %v, the graph's has %v", name, src.Dtype(), dst.Dtype())
		}
	}
	var extra []string
	for name := range st.Tensors {
		if _, ok := want[name]; !ok && !(opt == nil && strings.HasPrefix(name, VelocityPrefix)) {
			extra = append(extra, strconv.Quote(name))
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fail("tensors %s are not in the graph (another architecture?)", strings.Join(extra, ", "))
	}
	rngs := RNGOps(g)
	states := make([][]byte, len(rngs))
	for i := range rngs {
		s, ok := st.Metadata["rng."+strconv.Itoa(i)]
		if !ok {
			return fail("no RNG state for op %d (%v); the graph has %d ops with random state", i, rngs[i], len(rngs))
		}
		if states[i], err = base64.StdEncoding.DecodeString(s); err != nil {
			return fail("RNG state of op %d: %v", i, err)
		}
	}
	if _, ok := st.Metadata["rng."+strconv.Itoa(len(rngs))]; ok {
		return fail("more RNG states than the graph's %d ops with random state", len(rngs))
	}
	var s State
	ints := []struct {
		key string
		dst *int
	}{{"epoch", &s.Epoch}, {"batch", &s.Batch}, {"step", &s.Step}}
	for _, f := range ints {
		if *f.dst, err = strconv.Atoi(st.Metadata[f.key]); err != nil {
			return fail("metadata %s: %v", f.key, err)
		}
	}
	if s.Seed, err = strconv.ParseUint(st.Metadata["seed"], 10, 64); err != nil {
		return fail("metadata seed: %v", err)
	}
	if s.LastLoss, err = strconv.ParseFloat(st.Metadata["last_loss"], 64); err != nil {
		return fail("metadata last_loss: %v", err)
	}
	s.ConfigHash = st.Metadata["config_hash"]
	for k, v := range st.Metadata {
		if id, ok := strings.CutPrefix(k, identityPrefix); ok {
			if s.Identity == nil {
				s.Identity = map[string]string{}
			}
			s.Identity[id] = v
		}
		if id, ok := strings.CutPrefix(k, backendPrefix); ok {
			if s.Backend == nil {
				s.Backend = map[string]string{}
			}
			s.Backend[id] = v
		}
	}
	jsons := []struct {
		key string
		dst any
	}{{"config", &s.Config}, {"history", &s.History}, {"running", &s.Running}}
	for _, f := range jsons {
		if err := json.Unmarshal([]byte(st.Metadata[f.key]), f.dst); err != nil {
			return fail("metadata %s: %v", f.key, err)
		}
	}
	started := false
	if opt != nil {
		if started, err = strconv.ParseBool(st.Metadata["optim.started"]); err != nil {
			return fail("metadata optim.started: %v", err)
		}
	}
	// Everything checked: restore.
	for name, dst := range want {
		copyDense(dst, st.Tensors[name])
	}
	for i, r := range rngs {
		if err := r.SetRNGState(states[i]); err != nil {
			return fail("restore RNG state of op %d (%v): %v", i, r, err)
		}
	}
	if opt != nil {
		opt.SetStarted(started)
	}
	return s, nil
}

// storedAs is the safetensors dtype a tensor dtype is written as.
func storedAs(dt tensor.Dtype) string {
	s, _, err := stDtype(dt)
	if err != nil {
		return dt.String()
	}
	return s
}

// copyDense copies src's elements into dst (same dtype and size).
func copyDense(dst, src *tensor.Dense) {
	switch dst.Dtype() {
	case tensor.Float32:
		copy(dst.Float32s(), src.Float32s())
	case tensor.Float64:
		copy(dst.Float64s(), src.Float64s())
	case tensor.Int64:
		copy(dst.Int64s(), src.Int64s())
	case tensor.Int32:
		copy(dst.Int32s(), src.Int32s())
	case tensor.Int:
		// Read back as I64 (or I32 on 32-bit platforms).
		d := dst.Ints()
		switch src.Dtype() {
		case tensor.Int64:
			for i, v := range src.Int64s() {
				d[i] = int(v)
			}
		case tensor.Int32:
			for i, v := range src.Int32s() {
				d[i] = int(v)
			}
		}
	}
}
