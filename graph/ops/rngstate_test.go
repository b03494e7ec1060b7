package ops_test

import (
	"testing"

	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestRNGStateReplaysMasks saves a dropout op's state, draws, restores and
// draws again: the two masks are the same.
func TestRNGStateReplaysMasks(t *testing.T) {
	g := gorgonia.NewGraph()
	x := gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(8, 16), gorgonia.WithName("x"), gorgonia.WithInit(gorgonia.Ones()))
	mode := ops.NewMode()
	y, err := ops.Dropout(x, 0.5, mode, 42)
	if err != nil {
		t.Fatal(err)
	}
	op := y.Op().(*ops.DropoutOp)
	vm := gorgonia.NewTapeMachine(g)
	draw := func() []float64 {
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		return append([]float64(nil), y.Value().Data().([]float64)...)
	}
	draw()
	state, err := op.RNGState()
	if err != nil {
		t.Fatal(err)
	}
	first := draw()
	if err := op.SetRNGState(state); err != nil {
		t.Fatal(err)
	}
	again := draw()
	for i := range first {
		if first[i] != again[i] {
			t.Fatalf("mask differs at %d after restoring the RNG state", i)
		}
	}
	if err := op.SetRNGState([]byte{1}); err == nil {
		t.Error("a short state was accepted")
	}
}
