package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/eraserelu/eraserelu/experiments"
	"github.com/spf13/cobra"
)

// selectCommand is `eraserelu select`: the paper's choice of the EraseReLU
// proportion by validation error, then the run with the chosen one.
func selectCommand() *cobra.Command {
	var jf jobFlags
	var candidates []float64
	var validation float64
	cmd := &cobra.Command{
		Use:   "select",
		Short: "Choose the EraseReLU proportion on a validation split (the paper's section 4.2), then train with it on the full training set",
		Long: `Each candidate proportion trains on a stratified split of the training set
(--validation of each class held out) and is evaluated on the held-out part;
the lowest validation error wins (the first listed on a tie). The run then
trains with the chosen proportion on the full training set and is tested on
the test set. Candidates go to <out>-select/, the final run to --out; both
resume. The report (also <out>/selection.md) lists every candidate.`,
		Example: `  eraserelu select --arch resnet-56 --dataset cifar10 --recipe he-resnet --out runs/r56-selected
  eraserelu select --arch mlp-12 --dataset mnist --recipe mlp-mnist --candidates 0.25,0.5 --validation 0.2 --out runs/mlp-sel`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, job, dir, err := jf.prepare(cmd)
			if err != nil {
				return err
			}
			if job.Selection, err = experiments.NewSelection(candidates, validation); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			md, err := experiments.RunSelect(ctx, env, job, dir)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), md)
			return nil
		},
	}
	cmd.Flags().Float64SliceVar(&candidates, "candidates", experiments.DefaultCandidates, "proportions to choose from")
	cmd.Flags().Float64Var(&validation, "validation", experiments.DefaultValidation, "fraction of each class's training images held out for validation")
	jf.add(cmd)
	return cmd
}
