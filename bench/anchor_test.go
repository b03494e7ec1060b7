package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// python3 is the interpreter of the device scripts' Python helpers, or a skip.
func python3(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	return py
}

// TestGPURatios: gpu_ratios.py pairs each architecture's runs of ours and
// of PyTorch by mode (ours fp32/tf32; PyTorch exact fp32, its defaults,
// AMP bf16 + channels-last; ours fp32 with --direct-conv in its own
// column), leaves out erased and graph-less runs, and
// divides: on a made-up log with every mode, and on the 2026-11-28 device
// logs (before --precision and the torch modes), whose ResNet-20 ratio was
// 26287/14283 = 1.84x.
func TestGPURatios(t *testing.T) {
	py := python3(t)
	dir := t.TempDir()
	ours := `=== bench-resnet-20: ...
{"arch":"resnet-20","batch":128,"erase":0,"cuda_graph":true,"precision":"fp32","train_img_s":20000,"arena_mib":229}
{"arch":"resnet-20","batch":128,"erase":0,"cuda_graph":true,"precision":"tf32","train_img_s":30000,"arena_mib":229}
{"arch":"resnet-20","batch":128,"erase":0,"cuda_graph":true,"precision":"bf16","train_img_s":44000,"arena_mib":217,"arena_fp32_mib":229}
{"arch":"resnet-20","batch":128,"erase":0,"cuda_graph":true,"precision":"fp32","direct_conv":true,"train_img_s":24000,"arena_mib":229}
{"arch":"resnet-20","batch":128,"erase":0,"cuda_graph":false,"precision":"fp32","train_img_s":1}
{"arch":"resnet-20","batch":128,"erase":1,"cuda_graph":true,"precision":"fp32","train_img_s":2}
{"arch":"wrn-28-10","batch":128,"erase":0,"cuda_graph":true,"precision":"fp32","train_img_s":1000,"arena_mib":4655}
`
	torch := `torch 2.11.0+cu130, threads 2, cuda 13.0
resnet20 dev=cuda erase=False params=272474 batch=128 train_img_s=8000.0 step_ms=1 eval_img_s=1 peak_gpu_MiB=330 amp=none channels_last=0 math=conv:fp32,matmul:fp32 cudnn_benchmark=0 loss_last=2.3
resnet20 dev=cuda erase=False params=272474 batch=128 train_img_s=10000.0 step_ms=1 eval_img_s=1 peak_gpu_MiB=331 amp=none channels_last=0 math=conv:tf32,matmul:fp32 cudnn_benchmark=0 loss_last=2.3
resnet20 dev=cuda erase=False params=272474 batch=128 train_img_s=40000.0 step_ms=1 eval_img_s=1 peak_gpu_MiB=200 amp=bf16 channels_last=1 math=conv:tf32,matmul:fp32 cudnn_benchmark=1 loss_last=2.3
resnet20 dev=cuda erase=True params=272474 batch=128 train_img_s=3.0 step_ms=1 eval_img_s=1 peak_gpu_MiB=330 amp=none channels_last=0 math=conv:tf32,matmul:fp32 cudnn_benchmark=0 loss_last=2.3
wrn28-10 dev=cuda erase=False params=36479194 batch=128 train_img_s=500.0 step_ms=1 eval_img_s=1 peak_gpu_MiB=9000 amp=none channels_last=0 math=conv:tf32,matmul:fp32 cudnn_benchmark=0 loss_last=2.3
`
	b, tl := filepath.Join(dir, "bench.log"), filepath.Join(dir, "torch.log")
	if err := os.WriteFile(b, []byte(ours), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tl, []byte(torch), 0o644); err != nil {
		t.Fatal(err)
	}
	rows := ratioRows(t, py, b, tl)
	//                    ours_fp32 ours_tf32 pt_fp32 pt_default pt_amp fp32/pt_fp32 fp32/pt_default tf32/pt_default tf32/pt_amp arena peak ours_bf16 bf16/pt_amp arena_bf16 ours_fp32_direct direct/pt_fp32
	want := map[string]string{
		"resnet20": "20000 30000 8000 10000 40000 2.50x 2.00x 3.00x 0.75x 229 331 44000 1.10x 217 24000 3.00x",
		"wrn28-10": "1000 - - 500 - - 2.00x - - 4655 9000 - - - - -",
	}
	for a, w := range want {
		if rows[a] != w {
			t.Errorf("%s: %q, want %q", a, rows[a], w)
		}
	}
	if len(rows) != len(want) {
		t.Errorf("rows %v", rows)
	}
	old := ratioRows(t, py, "../docs/gpu-runs/2026-11-28/bench.log", "../docs/gpu-runs/2026-11-28/torch.log")
	if w := "26287 29187 - 14283 - - 1.84x 2.04x - 229 330 - - - - -"; old["resnet20"] != w {
		t.Errorf("2026-11-28 resnet20: %q, want %q", old["resnet20"], w)
	}
}

// ratioRows runs gpu_ratios.py and returns its rows by architecture.
func ratioRows(t *testing.T, py, bench, torch string) map[string]string {
	t.Helper()
	out, err := exec.Command(py, "gpu_ratios.py", bench, torch).CombinedOutput()
	if err != nil {
		t.Fatalf("gpu_ratios.py: %v\n%s", err, out)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(out), "\n")[2:] {
		if f := strings.Fields(line); len(f) > 1 {
			rows[f[0]] = strings.Join(f[1:], " ")
		}
	}
	return rows
}

// TestTorchAnchorModes runs the PyTorch anchor, where PyTorch is installed,
// for one step of ResNet-8 and WRN-10-1 in each mode gpu-check.sh uses on
// the device, here on the CPU (autocast bf16 and channels-last exist there
// too), and checks each line reports its mode and the parameter counts of
// arch: WRN-10-1 77,850; ResNet-8 78,042, which is arch's 75,290 plus the
// shared script's projection shortcuts (1x1 conv + BN, He et al.'s option B;
// arch uses option A, zero padding): 2,560 weights and 192 BN parameters.
func TestTorchAnchorModes(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	py := python3(t)
	if exec.Command(py, "-c", "import torch").Run() != nil {
		t.Skip("no PyTorch for " + py)
	}
	for _, mode := range [][]string{{"--tf32", "off"}, {}, {"--amp", "bf16", "--channels-last", "--cudnn-benchmark"}} {
		args := append([]string{"torch_resnet_bench.py", "8", "wrn-10-1", "--steps", "1", "--warmup", "0", "--batch", "4"}, mode...)
		out, err := exec.Command(py, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", mode, err, out)
		}
		s := string(out)
		wantAMP := "amp=none channels_last=0"
		if len(mode) > 2 {
			wantAMP = "amp=bf16 channels_last=1"
		}
		for _, w := range []string{"resnet8 dev=cpu erase=False params=78042 ", "wrn10-1 dev=cpu erase=False params=77850 ", wantAMP, "train_img_s="} {
			if !strings.Contains(s, w) {
				t.Errorf("%v: no %q in\n%s", mode, w, s)
			}
		}
	}
	out, err := exec.Command(py, "torch_resnet_bench.py", "wrn-27-10").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "want a depth 6n+2, resnet-<6n+2> or wrn-<6n+4>-<k>") {
		t.Errorf("wrn-27-10: %v\n%s", err, out)
	}
}
