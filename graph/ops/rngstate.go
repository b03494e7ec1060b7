package ops

import (
	"encoding/binary"
	"fmt"
)

// The random ops draw their masks from (seed, number of draws so far), so
// their whole random state is the draw counter. Checkpoints save it through
// these methods (train.RNGStater) so that a resumed run draws the masks an
// uninterrupted run would have drawn.

// RNGState is the dropout op's draw counter.
func (op *DropoutOp) RNGState() ([]byte, error) {
	return binary.LittleEndian.AppendUint64(nil, op.step), nil
}

// SetRNGState restores a draw counter saved by RNGState.
func (op *DropoutOp) SetRNGState(b []byte) error { return setStep(&op.step, b, "dropout") }

// RNGState is the stochastic-depth op's draw counter.
func (op *StochasticDepthOp) RNGState() ([]byte, error) {
	return binary.LittleEndian.AppendUint64(nil, op.step), nil
}

// SetRNGState restores a draw counter saved by RNGState.
func (op *StochasticDepthOp) SetRNGState(b []byte) error {
	return setStep(&op.step, b, "stochastic depth")
}

func setStep(step *uint64, b []byte, what string) error {
	if len(b) != 8 {
		return fmt.Errorf("%s RNG state: %d bytes, want 8", what, len(b))
	}
	*step = binary.LittleEndian.Uint64(b)
	return nil
}
