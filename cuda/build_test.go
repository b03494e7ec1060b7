package cuda

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

// TestGPUTagVets compiles and vets the -tags gpu code (the executor,
// devcheck and the GPU variant of the eraserelu command) where the CUDA 11.8 headers are installed (`make cuda-deps`);
// elsewhere, CI included, it skips.
func TestGPUTagVets(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	if _, err := os.Stat("/usr/include/cuda.h"); err != nil {
		t.Skip("no CUDA headers (make cuda-deps)")
	}
	if _, err := os.Stat("/usr/include/cublas_v2.h"); err != nil {
		t.Skip("no cuBLAS headers (make cuda-deps)")
	}
	cmd := exec.Command("go", "vet", "-tags", "gpu,purego", "./", "./devcheck", "../cmd/eraserelu")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("go vet -tags gpu,purego: %v\n%s", err, out.String())
	}
}
