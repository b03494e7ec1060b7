//go:build !gpu

// Command cudacheck runs the CUDA path's device checks and benchmarks; it
// needs `-tags gpu` (see docs/CUDA.md and `make cuda-build`).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "cudacheck: built without the gpu tag; build with `make cuda-build`")
	os.Exit(2)
}
