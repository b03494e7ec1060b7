//go:build gpu

package cuda

import (
	"fmt"

	"github.com/eraserelu/eraserelu/train"
)

// Device is an Executor.
var _ Executor = (*Device)(nil)

// OpenDevice is NewBackend's opener for GPU 0 with these options.
func OpenDevice(opt Options) func(*Step) (Executor, error) {
	return func(s *Step) (Executor, error) {
		d, err := Open(s, opt)
		if err != nil {
			return nil, err
		}
		return d, nil
	}
}

// DeviceBackend is the trainer's backend on GPU 0 (eraserelu train --device cuda).
func DeviceBackend(opt Options) train.BackendFactory {
	return NewBackend(OpenDevice(opt), opt.Lowering)
}

// String names the device.
func (d *Device) String() string {
	mode := ""
	if d.opt.Graph {
		mode = ", CUDA graph"
	}
	switch d.opt.Precision {
	case TF32:
		mode += ", TF32"
	case BF16:
		mode += ", bf16 mixed precision"
	}
	return fmt.Sprintf("cuda (%s%s)", d.Name, mode)
}

// SetStarted says whether the optimizer has taken a step (after a resume);
// if not, the next step initialises the velocities with the gradients.
func (d *Device) SetStarted(v bool) { d.first = !v }

// Infer runs s, an inference step lowered onto d.S (LowerInference), on
// the staged batch and returns its metrics. Its launches are prepared on
// the first call.
func (d *Device) Infer(s *Step) (StepMetrics, error) {
	ls, ok := d.evals[s]
	if !ok {
		if s.Base != d.S {
			return StepMetrics{}, fmt.Errorf("cuda: the inference step was not lowered onto this device's step")
		}
		if s.ArenaBytes > d.S.ArenaBytes {
			return StepMetrics{}, fmt.Errorf("cuda: the inference step needs a %d-byte arena, the device has %d (plan it before Open)", s.ArenaBytes, d.S.ArenaBytes)
		}
		var err error
		if ls, err = d.prepare(s); err != nil {
			return StepMetrics{}, err
		}
		if d.evals == nil {
			d.evals = map[*Step][]launch{}
		}
		d.evals[s] = ls
	}
	if err := d.launch(s, ls, 0, len(ls)); err != nil {
		return StepMetrics{}, err
	}
	return d.metrics()
}
