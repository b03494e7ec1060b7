package kernels

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPTXTargets: the committed PTX is one module for compute capability
// 7.0 (.target sm_70, the only target) in the PTX ISA version that driver
// R520 and newer JIT-compile, which is what MinMajor/MinMinor and
// PTXVersion promise to the executor and the docs.
func TestPTXTargets(t *testing.T) {
	targets, versions := Targets(read(t, "ops.ptx"))
	want := "sm_" + strconv.Itoa(MinMajor) + strconv.Itoa(MinMinor)
	if Arch != "compute_"+strings.TrimPrefix(want, "sm_") {
		t.Errorf("Arch %s does not match MinMajor.MinMinor %d.%d", Arch, MinMajor, MinMinor)
	}
	if len(targets) != 1 || targets[0] != want {
		t.Errorf("ops.ptx .target %v, want exactly [%s]: run `make cuda-ptx`", targets, want)
	}
	if len(versions) != 1 || versions[0] != PTXVersion {
		t.Errorf("ops.ptx .version %v, want [%s] (a newer PTX ISA needs a newer driver: update PTXVersion and docs/CUDA.md)", versions, PTXVersion)
	}
}

// TestPTXIsCurrentForSource: the PTX records the SHA-256 of the ops.cu it
// was generated from, and that is today's ops.cu (an edit of ops.cu
// without `make cuda-ptx` fails here, on machines without nvcc too).
func TestPTXIsCurrentForSource(t *testing.T) {
	got, want := RecordedHash(read(t, "ops.ptx")), SourceHash(read(t, "ops.cu"))
	if got == "" {
		t.Fatal("ops.ptx records no source hash: run `make cuda-ptx` (go generate ./cuda/kernels)")
	}
	if got != want {
		t.Errorf("ops.ptx was generated from an ops.cu with sha256 %s, ops.cu now has %s: run `make cuda-ptx` (go generate ./cuda/kernels)", got, want)
	}
}

// TestHeaderRoundTrip: the hash Header writes is the one RecordedHash
// reads, and a different source gives a different hash.
func TestHeaderRoundTrip(t *testing.T) {
	a, b := []byte("__global__ void f() {}\n"), []byte("__global__ void g() {}\n")
	h := Header("x.cu", a)
	if !strings.HasPrefix(h, "// Code generated") || !strings.Contains(h, "x.cu") || !strings.Contains(h, "DO NOT EDIT.") {
		t.Errorf("header %q", h)
	}
	if RecordedHash([]byte(h+".version 7.8\n")) != SourceHash(a) || SourceHash(a) == SourceHash(b) {
		t.Error("the recorded hash is not the source's")
	}
	if RecordedHash([]byte("//\n.version 7.8\n")) != "" {
		t.Error("a PTX without a header records a hash")
	}
}

// TestPTXMatchesSource regenerates the PTX where nvcc is installed (`make
// cuda-deps`) and checks the committed ops.ptx is byte for byte what
// ops.cu compiles to; elsewhere, CI included, it skips.
func TestPTXMatchesSource(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	nvcc, err := exec.LookPath("nvcc")
	if err != nil {
		t.Skip("no nvcc (make cuda-deps)")
	}
	out := filepath.Join(t.TempDir(), "ops.ptx")
	if err := Generate(nvcc, "ops.cu", out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read(t, out), read(t, "ops.ptx")) {
		t.Error("ops.ptx is stale: run `make cuda-ptx` (go generate ./cuda/kernels)")
	}
}

// TestPTXAssemblesForEveryGPUSinceVolta assembles the committed PTX with
// ptxas for the GPUs the driver will JIT it for (V100, T4, A100, RTX 30xx,
// RTX 40xx, H100/H200) where the CUDA toolkit is installed: what the
// driver's JIT does at load, so a kernel that used an instruction of a
// newer GPU, or too many registers for one, fails here.
func TestPTXAssemblesForEveryGPUSinceVolta(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	ptxas, err := exec.LookPath("ptxas")
	if err != nil {
		t.Skip("no ptxas (make cuda-deps)")
	}
	for _, sm := range []string{"sm_70", "sm_75", "sm_80", "sm_86", "sm_89", "sm_90"} {
		t.Run(sm, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), sm+".cubin")
			if msg, err := exec.Command(ptxas, "-arch="+sm, "-o", out, "ops.ptx").CombinedOutput(); err != nil {
				t.Errorf("ptxas -arch=%s ops.ptx: %v\n%s", sm, err, msg)
			}
		})
	}
}
