package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/cuda"
	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/pipeline"
	"github.com/eraserelu/eraserelu/train"
	"github.com/spf13/cobra"
)

// archCommand is `eraserelu arch`: the architectures of the paper.
func archCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "arch",
		Short: "List the paper's architectures, or show one's parameters, MACs, modules and ReLUs",
	}
	cmd.AddCommand(archListCommand(), archShowCommand())
	return cmd
}

func archListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "Every architecture name with a one-line description",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tINPUT\tCLASSES\tDESCRIPTION")
			for _, in := range arch.List() {
				fmt.Fprintf(w, "%s\t%dx%dx%d\t%d\t%s\n", in.Name, in.Input[0], in.Input[1], in.Input[2], in.Classes, in.Description)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "\nOther depths and widths:")
			for _, p := range arch.Patterns() {
				fmt.Fprintln(cmd.OutOrStdout(), "  "+p)
			}
			return nil
		},
	}
}

// archShow is the result of `arch show`, also its JSON form.
type archShow struct {
	Arch            string   `json:"arch"`
	Family          string   `json:"family"`
	Classes         int      `json:"classes"`
	Input           [3]int   `json:"input"`
	AfterActivation bool     `json:"after_activation,omitempty"`
	Params          int      `json:"params"`
	MACs            int64    `json:"macs"`
	Modules         int      `json:"modules"`
	ReLUsBefore     int      `json:"relus_before"`
	ReLUsAfter      int      `json:"relus_after"`
	Proportion      float64  `json:"erase"`
	Location        string   `json:"location"`
	Erased          []string `json:"erased"`
	// ModuleReport is every module with its trailing ReLU and whether it
	// was erased (with --erase).
	ModuleReport []erase.ModuleReport `json:"module_report,omitempty"`
	// DeviceArena is the CUDA path's planned arena for one training step
	// (with --device-arena BATCH).
	DeviceArena *deviceArena `json:"device_arena,omitempty"`
}

// deviceArena is the device memory the CUDA path plans for a training step
// (parameters, gradients, velocities, statistics and every activation, as
// the GPU allocates it; the CUDA context and cuBLAS's workspace come on top).
type deviceArena struct {
	Batch            int     `json:"batch"`
	FP32MiB          float64 `json:"fp32_mib"`
	FP32RecomputeMiB float64 `json:"fp32_recompute_bn_mib"`
	BF16MiB          float64 `json:"bf16_mib"`
	BF16RecomputeMiB float64 `json:"bf16_recompute_bn_mib"`
}

// planArena lowers the training step at batch for each precision, keeping
// and recomputing batch-norm outputs, and returns the planned arenas.
func planArena(net pipeline.Net, batch int) (*deviceArena, error) {
	net.Batch = batch
	nw, err := pipeline.Compile(net)
	if err != nil {
		return nil, err
	}
	defer nw.Program.Close()
	a := &deviceArena{Batch: batch}
	for _, c := range []struct {
		low cuda.Lowering
		mib *float64
	}{
		{cuda.Lowering{Precision: cuda.FP32}, &a.FP32MiB},
		{cuda.Lowering{Precision: cuda.FP32, RecomputeBN: true}, &a.FP32RecomputeMiB},
		{cuda.Lowering{Precision: cuda.BF16}, &a.BF16MiB},
		{cuda.Lowering{Precision: cuda.BF16, RecomputeBN: true}, &a.BF16RecomputeMiB},
	} {
		s, _, err := cuda.LowerProgram(nw.Program, train.SGDOptions{Momentum: 0.9}, c.low)
		if err != nil {
			return nil, fmt.Errorf("device arena: %w", err)
		}
		*c.mib = float64(s.ArenaBytes) / (1 << 20)
	}
	return a, nil
}

func archShowCommand() *cobra.Command {
	var (
		name     string
		classes  int
		prop     float64
		location string
		asJSON   bool
		after    bool
		arena    int
	)
	cmd := &cobra.Command{
		Use:   "show --arch NAME",
		Short: "Parameters, MACs per image, modules and ReLUs before and after erasing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return errors.New("arch show: --arch is required (see `eraserelu arch list`)")
			}
			if prop < 0 || prop > 1 {
				return fmt.Errorf("arch show: --erase %g: want a proportion in [0, 1]", prop)
			}
			loc, err := erase.ParseLocation(location)
			if err != nil {
				return fmt.Errorf("arch show: --location: %w", err)
			}
			spec, err := arch.Parse(name)
			if err != nil {
				return err
			}
			// Section 3.1: a pre-activation net is converted to
			// after-activation before its ReLUs are erased.
			if prop > 0 && spec.PreActivation() {
				after = true
			}
			net := pipeline.Net{Arch: name, Classes: classes, AfterActivation: after}
			if prop > 0 {
				net.Erase = &erase.Options{Proportion: prop, Location: loc}
			}
			nw, err := pipeline.Build(net)
			if err != nil {
				return err
			}
			g := nw.Built
			st := arch.Count(g)
			x, _ := g.Input("x")
			in := [3]int{1, 1, 1}
			if s := x.Shape(); len(s) == 4 {
				in = [3]int{s[1], s[2], s[3]}
			} else if info, ok := listed(spec.Name); ok {
				in = info.Input
			}
			out := archShow{
				Arch: spec.Name, Family: string(spec.Family), Classes: outputWidth(g), Input: in,
				AfterActivation: after, Params: st.Params, MACs: st.MACs, Modules: st.Modules,
				ReLUsBefore: st.ReLUs, ReLUsAfter: st.ReLUs, Proportion: prop, Location: loc.String(),
				Erased: []string{},
			}
			rep := nw.Report
			if rep != nil {
				out.ReLUsBefore, out.ReLUsAfter = rep.ReLUsBefore, rep.ReLUsAfter
				out.Erased = append(out.Erased, rep.Erased...)
				out.ModuleReport = rep.Modules
			}
			if arena < 0 {
				return fmt.Errorf("arch show: --device-arena %d: want a batch size (0: off)", arena)
			}
			if arena > 0 {
				if out.DeviceArena, err = planArena(net, arena); err != nil {
					return err
				}
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			if err := printShow(cmd.OutOrStdout(), out); err != nil || rep == nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return rep.Write(cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "arch", "", "architecture name (see: eraserelu arch list)")
	f.IntVar(&classes, "classes", 0, "number of classes (default: the family's dataset)")
	f.Float64Var(&prop, "erase", 0, "proportion of modules whose trailing ReLU is erased, in [0, 1]")
	f.StringVar(&location, "location", "last", "which ReLU of a module to erase: last (EraseReLU), first (ER*) or all")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	f.BoolVar(&after, "after-activation", false, "convert a pre-activation net to after-activation (section 3.1; implied by --erase)")
	f.IntVar(&arena, "device-arena", 0, "plan the CUDA path's training step at this batch size and print its device arena "+
		"(fp32 and bf16, keeping and recomputing batch-norm outputs; no GPU needed)")
	return cmd
}

func listed(name string) (arch.Info, bool) {
	for _, in := range arch.List() {
		if in.Name == name {
			return in, true
		}
	}
	return arch.Info{}, false
}

// outputWidth is the width of the network's output (classes).
func outputWidth(g *graph.Graph) int {
	for _, name := range []string{"logits", "y_hat"} {
		if n, ok := g.Output(name); ok {
			return n.Shape()[1]
		}
	}
	return 0
}

func printShow(w io.Writer, s archShow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "arch\t%s (%s)\n", s.Arch, s.Family)
	if s.AfterActivation {
		fmt.Fprintf(tw, "form\tafter-activation (converted)\n")
	}
	fmt.Fprintf(tw, "input\t%dx%dx%d, %d classes\n", s.Input[0], s.Input[1], s.Input[2], s.Classes)
	fmt.Fprintf(tw, "params\t%s (%.2fM)\n", thousands(int64(s.Params)), float64(s.Params)/1e6)
	fmt.Fprintf(tw, "MACs\t%s per image (%.2fG)\n", thousands(s.MACs), float64(s.MACs)/1e9)
	fmt.Fprintf(tw, "modules\t%d\n", s.Modules)
	fmt.Fprintf(tw, "ReLUs\t%d before erasing, %d after\n", s.ReLUsBefore, s.ReLUsAfter)
	erased := "none"
	if len(s.Erased) > 0 {
		erased = fmt.Sprintf("%d (%s ReLU, %g of modules): %s", len(s.Erased), s.Location, s.Proportion, strings.Join(s.Erased, ", "))
	}
	fmt.Fprintf(tw, "erased\t%s\n", erased)
	if a := s.DeviceArena; a != nil {
		fmt.Fprintf(tw, "device arena\tbatch %d: fp32 %.0f MiB (%.0f with --recompute-bn), bf16 %.0f MiB (%.0f)\n",
			a.Batch, a.FP32MiB, a.FP32RecomputeMiB, a.BF16MiB, a.BF16RecomputeMiB)
	}
	return tw.Flush()
}

// thousands formats n with comma separators.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
