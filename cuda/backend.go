package cuda

import (
	"fmt"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"github.com/eraserelu/eraserelu/train"
	"gorgonia.org/tensor"
)

// Executor runs a planned training step, and inference steps lowered onto
// it (LowerInference), over one arena: Device on a GPU (-tags gpu), and
// RefExecutor, the CPU reference interpreter, anywhere. Buffer ids are the
// training step's.
type Executor interface {
	// Write copies host values into a buffer; Read copies one out.
	Write(id int, v []float32) error
	Read(id int) ([]float32, error)
	// SetBatch stages the images and labels (label -1: an unlabelled row)
	// for the next Step or Infer.
	SetBatch(x []float32, y []int) error
	// Step runs the training step with learning rate lr.
	Step(lr float64) (StepMetrics, error)
	// Infer runs an inference step lowered onto the training step.
	Infer(s *Step) (StepMetrics, error)
	// SetStarted says whether the optimizer has taken a step: if not, the
	// next step initialises the velocities with the gradients (PyTorch).
	SetStarted(bool)
	// String names the executor (the device) for logs.
	String() string
	Close()
}

// Backend is a train.Backend that runs the trainer's passes on an
// Executor: the training step (forward, loss, backward, SGD) and the
// inference step, lowered from the trainer's program. Parameters,
// velocities, running statistics and random ops' draw counters stay in the
// executor's arena; Load and Sync copy them to and from the graph, the
// trainer's SGD and the ops.
type Backend struct {
	g          *graph.Graph
	opt        *train.SGD
	train, inf *Step
	exec       Executor
	dirty      bool
}

// NewBackend is the train.BackendFactory of the device path: it lowers the
// trainer's program (a float32 graph with a softmax cross-entropy loss and
// ops that have device kernels) with the config's SGD, lowers its
// inference pass onto the same buffers, plans both, and opens an executor
// on the training step with open (for example OpenDevice, or NewRefExecutor).
// low chooses the precision (BF16: the mixed-precision steps, Lower) and
// what the backward pass recomputes.
func NewBackend(open func(*Step) (Executor, error), low Lowering) train.BackendFactory {
	return func(prog *graph.Program, cfg train.Config, opt *train.SGD) (train.Backend, error) {
		g := prog.Graph()
		ln, ok := g.Output("loss")
		if !ok {
			return nil, fmt.Errorf("cuda: the graph has no output \"loss\"")
		}
		if ops.Describe(ln.Op()).Kind != ops.KindCrossEntropy {
			return nil, fmt.Errorf("cuda: the device path needs the softmax cross-entropy loss (ops.SoftmaxCrossEntropy), this graph's loss is %v", ln.Op())
		}
		s, inf, err := LowerProgram(prog, cfg.SGDOptions(), low)
		if err != nil {
			return nil, err
		}
		if s.X < 0 || s.Y < 0 || s.Loss < 0 {
			return nil, fmt.Errorf("cuda: the training step has no input x, input y or loss")
		}
		if len(s.Params) != len(g.Params()) {
			return nil, fmt.Errorf("cuda: %d parameter slots for %d parameters", len(s.Params), len(g.Params()))
		}
		for i, sl := range s.Params {
			if p := g.Params()[i]; p.Name != sl.Name {
				return nil, fmt.Errorf("cuda: parameter slot %d is %s, the graph's parameter %s", i, sl.Name, p.Name)
			}
			if _, ok := opt.Velocity(sl.Name); !ok {
				return nil, fmt.Errorf("cuda: the optimizer has no velocity for %s", sl.Name)
			}
		}
		exec, err := open(s)
		if err != nil {
			return nil, err
		}
		return &Backend{g: g, opt: opt, train: s, inf: inf, exec: exec}, nil
	}
}

// LowerProgram lowers a compiled program into its training step (forward,
// loss, backward and the SGD update sgd describes, as low chooses) and its
// inference step lowered onto the training step's buffers, both planned:
// what a device backend and the device checks run.
func LowerProgram(prog *graph.Program, sgd train.SGDOptions, low Lowering) (trainStep, inferStep *Step, err error) {
	s, err := lower(prog, sgd, low, nil)
	if err != nil {
		return nil, nil, err
	}
	if low.RecomputeBN {
		s.RecomputeBN()
	}
	if err := s.Plan(); err != nil {
		return nil, nil, err
	}
	inf, err := LowerInference(prog, s)
	if err != nil {
		return nil, nil, err
	}
	if err := inf.Plan(); err != nil {
		return nil, nil, err
	}
	return s, inf, nil
}

// Steps are the training and inference steps the backend runs.
func (b *Backend) Steps() (trainStep, inferStep *Step) { return b.train, b.inf }

// Name is the executor's.
func (b *Backend) Name() string { return b.exec.String() }

// Load writes the parameters, the running statistics, the velocities, the
// random ops' draw counters and whether the optimizer has started to the
// executor.
func (b *Backend) Load() error {
	if err := WriteWeights(b.train, b.g, b.exec.Write); err != nil {
		return err
	}
	for _, sl := range b.train.Params {
		v, _ := b.opt.Velocity(sl.Name)
		if err := b.exec.Write(sl.Vel, v.Float32s()); err != nil {
			return err
		}
	}
	if b.train.RNG >= 0 {
		st, err := b.train.RNGState()
		if err != nil {
			return err
		}
		if err := b.exec.Write(b.train.RNG, st); err != nil {
			return err
		}
	}
	b.exec.SetStarted(b.opt.Started())
	b.dirty = false
	return nil
}

// Sync reads the parameters, running statistics, velocities and draw
// counters back into the graph, the SGD and the random ops after a step.
func (b *Backend) Sync() error {
	if !b.dirty {
		return nil
	}
	get := func(id int, dst []float32) error {
		v, err := b.exec.Read(id)
		if err != nil {
			return err
		}
		if len(v) != len(dst) {
			return fmt.Errorf("read %s: %d values, want %d", b.train.Bufs[id].Name, len(v), len(dst))
		}
		copy(dst, v)
		return nil
	}
	for i, sl := range b.train.Params {
		w, err := float32s(b.g.Params()[i].Node.Value())
		if err != nil {
			return fmt.Errorf("parameter %s: %w", sl.Name, err)
		}
		if err := get(sl.Param, w); err != nil {
			return err
		}
		v, _ := b.opt.Velocity(sl.Name)
		if err := get(sl.Vel, v.Float32s()); err != nil {
			return err
		}
	}
	for _, buf := range b.g.Buffers() {
		if id, ok := b.train.States[buf.Name]; ok {
			if err := get(id, buf.Value.Float32s()); err != nil {
				return err
			}
		}
	}
	if b.train.RNG >= 0 {
		v, err := b.exec.Read(b.train.RNG)
		if err != nil {
			return err
		}
		if err := b.train.SetRNGState(v); err != nil {
			return err
		}
	}
	b.opt.SetStarted(true)
	b.dirty = false
	return nil
}

func float32s(v any) ([]float32, error) {
	d, ok := v.(*tensor.Dense)
	if !ok || d == nil || d.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("value %T is not a float32 tensor", v)
	}
	return d.Float32s(), nil
}

// batch stages x and y (int labels, as the cross-entropy op takes them).
func (b *Backend) batch(x, y *tensor.Dense) error {
	xs, err := float32s(x)
	if err != nil {
		return fmt.Errorf("batch x: %w", err)
	}
	if y.Dtype() != tensor.Int {
		return fmt.Errorf("batch y: labels of dtype %v, the loss takes int", y.Dtype())
	}
	return b.exec.SetBatch(xs, y.Ints())
}

func pass(m StepMetrics) train.Pass {
	return train.Pass{Loss: m.Loss, Scored: true, Count: m.Count, Correct1: m.Top1, Correct5: m.Top5}
}

// Train runs the training step on the batch: forward, backward and SGD in
// one go (the update is applied whatever the loss).
func (b *Backend) Train(x, y *tensor.Dense, lr float64) (train.Pass, error) {
	if err := b.batch(x, y); err != nil {
		return train.Pass{}, err
	}
	b.dirty = true
	m, err := b.exec.Step(lr)
	if err != nil {
		return train.Pass{}, err
	}
	return pass(m), nil
}

// Infer runs the inference step on the batch.
func (b *Backend) Infer(x, y *tensor.Dense) (train.Pass, error) {
	if err := b.batch(x, y); err != nil {
		return train.Pass{}, err
	}
	m, err := b.exec.Infer(b.inf)
	if err != nil {
		return train.Pass{}, err
	}
	return pass(m), nil
}

// Close closes the executor.
func (b *Backend) Close() error {
	b.exec.Close()
	return nil
}

// RefExecutor is the Executor of the CPU reference interpreter: the device
// path, every kernel and the memory plan included, without a device. The
// tests train through it; it is far slower than the CPU backend.
type RefExecutor struct {
	R       *Ref
	started bool
}

// NewRefExecutor allocates the interpreter's arena for s (planned, with
// any inference steps lowered onto it planned too).
func NewRefExecutor(s *Step) (Executor, error) {
	if s.ArenaBytes == 0 {
		return nil, fmt.Errorf("cuda: plan the step before opening it")
	}
	return &RefExecutor{R: NewRef(s)}, nil
}

func (e *RefExecutor) String() string {
	if e.R.S.Precision == BF16 {
		return "cuda-ref (the device path on the CPU interpreter, bf16 mixed precision)"
	}
	return "cuda-ref (the device path on the CPU interpreter)"
}

// Write copies v into buffer id.
func (e *RefExecutor) Write(id int, v []float32) error { return e.R.Write(id, v) }

// Read copies buffer id out.
func (e *RefExecutor) Read(id int) ([]float32, error) {
	return append([]float32(nil), e.R.Buf(id)...), nil
}

// SetBatch copies the batch in.
func (e *RefExecutor) SetBatch(x []float32, y []int) error { return e.R.SetBatch(x, y) }

func (e *RefExecutor) metrics() StepMetrics {
	m := e.R.Buf(e.R.S.Metrics)
	return StepMetrics{Loss: float64(m[MetricLoss]), Count: int(m[MetricCount]), Top1: int(m[MetricTop1]), Top5: int(m[MetricTop5])}
}

// Step runs the training step.
func (e *RefExecutor) Step(lr float64) (StepMetrics, error) {
	if err := e.R.Step(lr, !e.started); err != nil {
		return StepMetrics{}, err
	}
	e.started = true
	return e.metrics(), nil
}

// Infer runs s, an inference step lowered onto the training step, in the
// same arena.
func (e *RefExecutor) Infer(s *Step) (StepMetrics, error) {
	if s.Base != e.R.S {
		return StepMetrics{}, fmt.Errorf("cuda: the inference step was not lowered onto this executor's step")
	}
	if s.ArenaBytes > int64(len(e.R.Arena))*ElemSize {
		return StepMetrics{}, fmt.Errorf("cuda: the inference step needs a %d-byte arena, this one has %d (plan it before opening)", s.ArenaBytes, len(e.R.Arena)*ElemSize)
	}
	if err := (&Ref{S: s, Arena: e.R.Arena}).Run(0, len(s.Instrs)); err != nil {
		return StepMetrics{}, err
	}
	return e.metrics(), nil
}

// SetStarted sets whether the next step is the optimizer's first.
func (e *RefExecutor) SetStarted(v bool) { e.started = v }

// Close does nothing: the arena is garbage collected.
func (e *RefExecutor) Close() {}

var _ train.Backend = (*Backend)(nil)
