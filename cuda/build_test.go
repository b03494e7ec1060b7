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

// TestPTXMatchesSource regenerates the PTX where nvcc is installed and
// checks the committed ops.ptx is what ops.cu compiles to.
func TestPTXMatchesSource(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	nvcc, err := exec.LookPath("nvcc")
	if err != nil {
		t.Skip("no nvcc (make cuda-deps)")
	}
	out := t.TempDir() + "/ops.ptx"
	cmd := exec.Command(nvcc, "-arch=sm_90", "-ptx", "-fmad=false", "-O3", "-o", out, "kernels/ops.cu")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nvcc: %v\n%s", err, msg)
	}
	got, _ := os.ReadFile(out)
	want, _ := os.ReadFile("kernels/ops.ptx")
	if !bytes.Equal(got, want) {
		t.Error("kernels/ops.ptx is stale: run `make cuda-ptx` (go generate ./cuda/kernels)")
	}
}
