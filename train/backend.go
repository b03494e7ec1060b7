package train

import (
	"math"

	"github.com/eraserelu/eraserelu/graph"
	"gorgonia.org/tensor"
)

// Backend runs a Trainer's passes. The default, the CPU backend, runs the
// compiled graph.Program and the trainer's SGD in host memory. A device
// backend (cuda.NewBackend, in the binary built with -tags gpu) keeps the
// parameters, the optimizer's velocities and the batch-norm running
// statistics on an accelerator: per step only the batch goes in and the
// loss and counts come back.
//
// The graph's parameters and buffers and the SGD's velocities and Started
// flag are the host copy of the state. The trainer calls Load once before
// the first step (after restoring a checkpoint when resuming) and Sync
// before anything reads the host copy (each checkpoint, the end of Run);
// between the two a device backend's state runs ahead of it.
//
// A Trainer calls its backend from the goroutine that called New and Run.
type Backend interface {
	// Name says where the passes run, for the run's log.
	Name() string
	// Load copies the host state into the backend.
	Load() error
	// Train runs one training step on the batch (x, y: the graph's inputs,
	// filled and padded by the trainer) with learning rate lr: forward,
	// loss, backward and the optimizer step. The CPU backend skips the
	// optimizer step when the loss is not finite; a device backend may
	// apply it anyway (the trainer stops on that loss and never syncs or
	// checkpoints the state after it).
	Train(x, y *tensor.Dense, lr float64) (Pass, error)
	// Infer runs the inference pass on a batch (batch norm on its running
	// statistics, dropout off); it changes no state.
	Infer(x, y *tensor.Dense) (Pass, error)
	// Sync copies the backend's state into the host copy (nothing to do
	// when no step ran since the last Load or Sync).
	Sync() error
	// Close releases the backend (not the program, nor the SGD).
	Close() error
}

// Pass is what one training or inference pass reports.
type Pass struct {
	// Loss is the mean loss over the batch's labelled examples.
	Loss float64
	// Scored is true when the loss op counts its examples (a Scorer):
	// Count labelled examples, Correct1 and Correct5 of them with the label
	// among the 1 and 5 highest logits. Otherwise the batch's examples
	// weigh the loss and no errors are reported.
	Scored                    bool
	Count, Correct1, Correct5 int
}

// BackendFactory makes a Trainer's backend (Options.Backend) for its
// program, config and optimizer; New calls it once it has checked them and
// bound the graph's inputs.
type BackendFactory func(prog *graph.Program, cfg Config, opt *SGD) (Backend, error)

// cpuBackend runs the program and the SGD on the CPU.
type cpuBackend struct {
	prog   *graph.Program
	opt    *SGD
	scorer Scorer
}

func newCPUBackend(prog *graph.Program, opt *SGD) *cpuBackend {
	b := &cpuBackend{prog: prog, opt: opt}
	if ln, ok := prog.Graph().Output("loss"); ok {
		b.scorer, _ = ln.Op().(Scorer)
	}
	return b
}

func (b *cpuBackend) Name() string { return "cpu" }
func (b *cpuBackend) Load() error  { return nil }
func (b *cpuBackend) Sync() error  { return nil }
func (b *cpuBackend) Close() error { return nil }

func (b *cpuBackend) Train(_, _ *tensor.Dense, lr float64) (Pass, error) {
	if err := b.prog.Train(); err != nil {
		return Pass{}, err
	}
	p := b.pass()
	if math.IsNaN(p.Loss) || math.IsInf(p.Loss, 0) {
		return p, nil
	}
	return p, b.opt.Step(b.prog, lr)
}

func (b *cpuBackend) Infer(_, _ *tensor.Dense) (Pass, error) {
	if err := b.prog.Infer(); err != nil {
		return Pass{}, err
	}
	return b.pass(), nil
}

func (b *cpuBackend) pass() Pass {
	p := Pass{Loss: b.prog.Loss()}
	if b.scorer != nil {
		p.Scored, p.Count, p.Correct1, p.Correct5 = true, b.scorer.Count(), b.scorer.Correct(1), b.scorer.Correct(5)
	}
	return p
}
