// Package pipeline is the one place a run is assembled: a network spec
// (architecture, classes, input shape, erase options, precision, batch,
// seed) goes in; the built graph, its erased rewrite and the compiled
// program come out, and Device gives the trainer's backend for where the
// run goes (cpu, cuda, cuda-ref). Training, the experiments, Figure 4,
// `eraserelu arch show`, the benchmarks and the device checks all assemble
// their networks here, so the order build -> [extra outputs] -> erase ->
// compile is written once.
package pipeline

import (
	"fmt"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"gorgonia.org/tensor"
)

// Net is a network spec.
type Net struct {
	// Arch is the architecture name (arch.Parse), e.g. "resnet-110".
	Arch string
	// Classes, Batch, Input, Dtype and Seed are arch.Config's (0 or the
	// zero value: the family's default; Dtype defaults to float32).
	Classes, Batch int
	Input          [3]int
	Dtype          tensor.Dtype
	Seed           uint64
	// AfterActivation, StochasticDepth and Dropout are arch.Config's.
	AfterActivation bool
	StochasticDepth bool
	Dropout         float64
	// Outputs, when set, adds named outputs to the built graph before it is
	// erased, so they name the same values in the rewrite (Figure 4's
	// gradient target and last hidden layer).
	Outputs func(g *graph.Graph) error
	// Erase, when set, is the EraseReLU pass applied after building.
	Erase *erase.Options
	// Loss is the output Compile differentiates (default "loss"), and
	// Compile its options.
	Loss    string
	Compile []graph.CompileOption
}

// Network is an assembled network.
type Network struct {
	// Spec is the parsed architecture.
	Spec arch.Spec
	// Built is the graph as the architecture built it; Graph is what runs:
	// Built, or its erased rewrite (which shares Built's parameters).
	Built, Graph *graph.Graph
	// Report is the erase pass's report (nil when Net.Erase is nil).
	Report *erase.Report
	// Program is Graph compiled (Compile only).
	Program *graph.Program
}

// Build builds the architecture, adds the spec's outputs and applies the
// erase pass.
func Build(n Net) (*Network, error) {
	spec, err := arch.Parse(n.Arch)
	if err != nil {
		return nil, err
	}
	g, err := arch.Build(arch.Config{Arch: n.Arch, Classes: n.Classes, Batch: n.Batch, InputShape: n.Input, Dtype: n.Dtype,
		Seed: n.Seed, AfterActivation: n.AfterActivation, StochasticDepth: n.StochasticDepth, Dropout: n.Dropout})
	if err != nil {
		return nil, err
	}
	nw := &Network{Spec: spec, Built: g, Graph: g}
	if n.Outputs != nil {
		if err := n.Outputs(g); err != nil {
			return nil, fmt.Errorf("%s: outputs: %w", spec.Name, err)
		}
	}
	if n.Erase != nil {
		if nw.Graph, nw.Report, err = erase.Apply(g, *n.Erase); err != nil {
			return nil, fmt.Errorf("%s: %w", spec.Name, err)
		}
	}
	return nw, nil
}

// Compile builds the network (Build) and compiles what runs, differentiating
// Net.Loss. Close the network to release its program.
func Compile(n Net) (*Network, error) {
	nw, err := Build(n)
	if err != nil {
		return nil, err
	}
	loss := n.Loss
	if loss == "" {
		loss = "loss"
	}
	if nw.Program, err = graph.Compile(nw.Graph, loss, n.Compile...); err != nil {
		return nil, fmt.Errorf("%s: compile: %w", nw.Spec.Name, err)
	}
	return nw, nil
}

// Close releases the compiled program, if any.
func (nw *Network) Close() {
	if nw.Program != nil {
		nw.Program.Close()
	}
}
