package train

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
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

// CheckpointFormat is the value of the "format" metadata key.
const CheckpointFormat = "eraserelu-checkpoint/1"

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
// path in the safetensors format, atomically. Metadata keys: format, epoch,
// batch, step, seed, config_hash, config, history, running, last_loss,
// optim.started and rng.<i> (base64) with rng.<i>.op naming the op.
func SaveCheckpoint(path string, g *graph.Graph, opt *SGD, st State) error {
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
	return WriteSafetensors(path, ts, meta)
}

// LoadCheckpoint restores a checkpoint written by SaveCheckpoint into the
// graph (parameters, buffers, op RNG states) and, when opt is not nil, the
// optimizer. Everything is checked before anything is changed: a missing
// tensor, a tensor of another shape or dtype, or one the graph does not have
// is an error naming the file and the tensor.
func LoadCheckpoint(path string, g *graph.Graph, opt *SGD) (State, error) {
	st, err := ReadSafetensors(path)
	if err != nil {
		return State{}, fmt.Errorf("checkpoint: %w", err)
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
