// Command eraserelu is the toolkit's command line: architectures, data,
// training, the paper's experiments, reports and benchmarks.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := rootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "eraserelu:", err)
		os.Exit(1)
	}
}

func rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "eraserelu",
		Short:         "EraseReLU research toolkit: build, erase, train and measure deep convolutional networks",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(archCommand(), dataCommand(), trainCommand(), selectCommand(), experimentCommand(), reportCommand(), benchCommand(), gpuCommand())
	return root
}
