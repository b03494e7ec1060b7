//go:build gpu

package main

import (
	"github.com/eraserelu/eraserelu/cuda"
	"github.com/eraserelu/eraserelu/cuda/devcheck"
	"github.com/eraserelu/eraserelu/train"
	"github.com/spf13/cobra"
)

// gpuBuild says this binary has the CUDA executor (-tags gpu).
const gpuBuild = true

func cudaBackend(opt cuda.Options) (train.BackendFactory, error) {
	return cuda.DeviceBackend(opt), nil
}

// gpuCommand runs the CUDA path's device checks and benchmarks (package
// devcheck); its flags are the check's own, parsed there.
func gpuCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "gpu probe|trace|check|profile|bench [flags]",
		Short: "Device checks and benchmarks of the CUDA path (GPU binary only; scripts/gpu-check.sh)",
		Long: `Device checks and benchmarks of the CUDA path:
  gpu probe                      driver, PTX load, kernels and SGEMM against the CPU
  gpu trace   --arch resnet-20   every kernel of one step against the CPU interpreter on identical inputs, then the drift
  gpu check   --arch resnet-20   one training step against the CPU in float32 and float64
  gpu profile --arch resnet-20   device time per kernel of one step (CUDA events)
  gpu bench   --arch resnet-20   training images/s, step time, device memory (JSON)
Flags: --arch --batch --steps --warmup --graph --precision --tol --erase --reps.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
				return cmd.Help()
			}
			return devcheck.Main(args)
		},
	}
}
