package train

import (
	"fmt"
	"math"

	"github.com/eraserelu/eraserelu/graph"
	"gorgonia.org/gorgonia"
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
	// Train runs one training step on the batch x, y with learning rate
	// lr: forward, loss, backward and the optimizer step. x and y have the
	// shapes and dtypes of the graph's inputs "x" and "y" (the trainer
	// fills and pads them); every backend reads the batch from them and
	// from nothing else, so a caller never binds the graph's inputs itself.
	// A backend keeps no reference to x and y beyond the call's need: the
	// CPU backend binds them as the program's inputs (a pointer, so
	// passing the same tensors every step costs nothing), a device backend
	// copies them to the device. The CPU backend skips the optimizer step
	// when the loss is not finite; a device backend may apply it anyway
	// (the trainer stops on that loss and never syncs or checkpoints the
	// state after it).
	Train(x, y *tensor.Dense, lr float64) (Pass, error)
	// Infer runs the inference pass on the batch x, y (as Train takes it;
	// batch norm on its running statistics, dropout off); it changes no
	// state.
	Infer(x, y *tensor.Dense) (Pass, error)
	// Sync copies the backend's state into the host copy (nothing to do
	// when no step ran since the last Load or Sync).
	Sync() error
	// Close releases the backend (not the program, nor the SGD).
	Close() error
}

// EpochReporter is a Backend with state of its own worth a line in the
// log (the CUDA path's fp16 loss scale): its fields join train.log's
// "epoch done" entry.
type EpochReporter interface {
	EpochFields() (map[string]any, error)
}

// StatefulBackend is a Backend with state of its own beyond the graph's
// values and the optimizer's (the CUDA path's fp16 loss scaler), which an
// exact resume needs: the trainer saves BackendState in every checkpoint
// it writes after Sync, and gives a resumed run's saved state (nil for a
// fresh run, or a checkpoint without it) to SetBackendState before Load.
type StatefulBackend interface {
	BackendState() (map[string]string, error)
	SetBackendState(map[string]string) error
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
// program, config and optimizer; New calls it once it has checked them.
type BackendFactory func(prog *graph.Program, cfg Config, opt *SGD) (Backend, error)

// cpuBackend runs the program and the SGD on the CPU.
type cpuBackend struct {
	prog   *graph.Program
	opt    *SGD
	scorer Scorer
	// x and y are the graph's inputs (y nil when the graph has no labels).
	x, y *gorgonia.Node
}

func newCPUBackend(prog *graph.Program, opt *SGD) *cpuBackend {
	g := prog.Graph()
	b := &cpuBackend{prog: prog, opt: opt}
	if ln, ok := g.Output("loss"); ok {
		b.scorer, _ = ln.Op().(Scorer)
	}
	b.x, _ = g.Input("x")
	b.y, _ = g.Input("y")
	return b
}

// stage makes x and y the values the program's inputs read. Binding is a
// pointer assignment, done only when a tensor differs from the bound one,
// so the batch is never copied and the trainer's steps allocate nothing.
func (b *cpuBackend) stage(x, y *tensor.Dense) error {
	if b.x == nil {
		return fmt.Errorf("cpu: the graph has no input \"x\"")
	}
	if err := bindInput(b.x, x); err != nil {
		return fmt.Errorf("cpu: batch x: %w", err)
	}
	if b.y == nil {
		return nil
	}
	if err := bindInput(b.y, y); err != nil {
		return fmt.Errorf("cpu: batch y: %w", err)
	}
	return nil
}

func bindInput(n *gorgonia.Node, t *tensor.Dense) error {
	if v, ok := n.Value().(*tensor.Dense); ok && v == t {
		return nil
	}
	if t == nil {
		return fmt.Errorf("no tensor for input %s", n.Name())
	}
	return gorgonia.Let(n, t)
}

func (b *cpuBackend) Name() string { return "cpu" }
func (b *cpuBackend) Load() error  { return nil }
func (b *cpuBackend) Sync() error  { return nil }
func (b *cpuBackend) Close() error { return nil }

func (b *cpuBackend) Train(x, y *tensor.Dense, lr float64) (Pass, error) {
	if err := b.stage(x, y); err != nil {
		return Pass{}, err
	}
	if err := b.prog.Train(); err != nil {
		return Pass{}, err
	}
	p := b.pass()
	if math.IsNaN(p.Loss) || math.IsInf(p.Loss, 0) {
		return p, nil
	}
	return p, b.opt.Step(b.prog, lr)
}

func (b *cpuBackend) Infer(x, y *tensor.Dense) (Pass, error) {
	if err := b.stage(x, y); err != nil {
		return Pass{}, err
	}
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
