package main

import (
	"encoding/json"
	"fmt"

	"github.com/eraserelu/eraserelu/bench"
	"github.com/spf13/cobra"
	"gorgonia.org/tensor"
)

// benchCommand is `eraserelu bench`: throughput and peak memory.
func benchCommand() *cobra.Command {
	var cfg bench.Config
	var asJSON, f64 bool
	var precision string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Train and eval images/s and peak RSS of one architecture on random data",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := precisionFor(precision, "cpu"); err != nil {
				return fmt.Errorf("bench (the CPU; the GPU's is eraserelu gpu bench): %w", err)
			}
			cfg.Dtype = tensor.Float32
			if f64 {
				cfg.Dtype = tensor.Float64
			}
			r, err := bench.Run(cfg)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(r)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s batch=%d params=%d train_img_s=%.1f step_ms=%.1f eval_img_s=%.1f peak_rss_MiB=%.0f build_ms=%.0f blas=%q conv=%q\n",
				r.Arch, r.Batch, r.Params, r.TrainImgS, r.StepMs, r.EvalImgS, r.PeakRSSMiB, r.BuildMs, r.BLAS, r.Conv)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Arch, "arch", "resnet-20", "architecture (see: eraserelu arch list)")
	f.IntVar(&cfg.Batch, "batch", 128, "batch size")
	f.IntVar(&cfg.Steps, "steps", 10, "timed training steps")
	f.IntVar(&cfg.Warmup, "warmup", 2, "untimed steps first")
	f.Float64Var(&cfg.Erase, "erase", 0, "EraseReLU proportion applied before compiling")
	f.BoolVar(&f64, "float64", false, "run in float64")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	addPrecisionFlag(f, &precision)
	return cmd
}
