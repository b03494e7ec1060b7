package cuda

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
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

// TestMakeGPURefusals: `make gpu` without a toolkit at CUDA_HOME fails
// naming CUDA_HOME and both ways out (a toolkit's root, make cuda-build),
// and builds nothing; scripts/gpu-build.sh, which it runs, names what a
// partial or unsupported toolkit lacks. Fake toolkits, no CUDA needed.
func TestMakeGPURefusals(t *testing.T) {
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Skip("no make")
	}
	dir := t.TempDir()
	out, err := exec.Command(mk, "-s", "-C", "..", "gpu", "CUDA_HOME="+dir+"/none", "GPU_DIR="+dir+"/bin").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "make gpu: no CUDA toolkit at CUDA_HOME="+dir+"/none (no "+dir+"/none/include/cuda.h)") ||
		!strings.Contains(string(out), "make gpu CUDA_HOME=") || !strings.Contains(string(out), "make cuda-build") {
		t.Errorf("make gpu CUDA_HOME=<none>: %v\n%s", err, out)
	}
	if _, err := os.Stat(dir + "/bin"); !os.IsNotExist(err) {
		t.Errorf("a refused make gpu wrote %s/bin", dir)
	}

	// toolkit writes a fake CUDA_HOME with the given files (name -> content).
	toolkit := func(name string, files map[string]string) string {
		home := filepath.Join(dir, name)
		for f, content := range files {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(home, f)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(home, f), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return home
	}
	cudaH := func(v int) string { return fmt.Sprintf("#define CUDA_VERSION %d\n", v) }
	for _, c := range []struct {
		home string
		want string
	}{
		{toolkit("noblas", map[string]string{"include/cuda.h": cudaH(12040)}), "has include/cuda.h but no include/cublas_v2.h"},
		{toolkit("old", map[string]string{"include/cuda.h": cudaH(11070), "include/cublas_v2.h": ""}), "is CUDA 11.7; make gpu builds against CUDA 11.8 to 13.x"},
		{toolkit("new", map[string]string{"include/cuda.h": cudaH(14000), "include/cublas_v2.h": ""}), "is CUDA 14.0; make gpu builds against CUDA 11.8 to 13.x"},
		{toolkit("nolib", map[string]string{"include/cuda.h": cudaH(13000), "include/cublas_v2.h": ""}), "no libcublas.so under CUDA_HOME="},
	} {
		out, err := exec.Command("bash", "../scripts/gpu-build.sh", c.home, dir+"/bin/eraserelu").CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%s: %v\n%s\nwant %q", c.home, err, out, c.want)
		}
	}
}

// TestMakeGPUBuilds runs `make gpu` where a CUDA toolkit is installed
// (CUDA_HOME, else /usr/local/cuda, else Debian's /usr: `make cuda-deps`);
// elsewhere, CI included, it skips. The binary must ask for cuBLAS by the
// toolkit's real soname (libcublas.so.<major>, not the stub build's .13
// unless the toolkit is CUDA 13) and libcuda.so.1.
func TestMakeGPUBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	home := os.Getenv("CUDA_HOME")
	for _, h := range []string{home, "/usr/local/cuda", "/usr"} {
		if h == "" {
			continue
		}
		if _, err := os.Stat(h + "/include/cublas_v2.h"); err == nil {
			home = h
			break
		}
		home = ""
	}
	if home == "" {
		t.Skip("no CUDA toolkit (make cuda-deps, or CUDA_HOME)")
	}
	dir := t.TempDir()
	out, err := exec.Command("make", "-s", "-C", "..", "gpu", "CUDA_HOME="+home, "GPU_DIR="+dir).CombinedOutput()
	if err != nil {
		t.Fatalf("make gpu CUDA_HOME=%s: %v\n%s", home, err, out)
	}
	// The script says which libcublas.so it linked and the file behind it.
	m := regexp.MustCompile(`libcublas\.so -> \S*/(libcublas\.so\.\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("make gpu does not say which cuBLAS it linked:\n%s", out)
	}
	soname := m[1] // libcublas.so.<major>
	elf, err := exec.Command("readelf", "-d", filepath.Join(dir, "eraserelu")).CombinedOutput()
	if err != nil {
		t.Fatalf("readelf: %v\n%s", err, elf)
	}
	for _, lib := range []string{"[" + soname + "]", "[libcuda.so.1]"} {
		if !strings.Contains(string(elf), lib) {
			t.Errorf("the make gpu binary does not need %s:\n%s", lib, elf)
		}
	}
}
