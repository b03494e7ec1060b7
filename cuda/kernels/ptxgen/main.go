// Command ptxgen generates the cuda package's PTX from its CUDA C source
// (go generate ./cuda/kernels): ptxgen SRC.cu DST.ptx. nvcc is $NVCC, else
// the one on PATH (`make cuda-deps` installs CUDA 11.8's).
package main

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/eraserelu/eraserelu/cuda/kernels"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ptxgen:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: ptxgen SRC.cu DST.ptx")
	}
	nvcc := os.Getenv("NVCC")
	if nvcc == "" {
		var err error
		if nvcc, err = exec.LookPath("nvcc"); err != nil {
			return fmt.Errorf("no nvcc on PATH and NVCC unset (make cuda-deps installs CUDA 11.8's): %w", err)
		}
	}
	return kernels.Generate(nvcc, args[0], args[1])
}
