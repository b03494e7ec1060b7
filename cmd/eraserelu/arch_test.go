package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func runArch(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := archCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), err
}

func TestArchList(t *testing.T) {
	out, err := runArch(t, "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"resnet-110", "preact-resnet-1001", "wrn-28-10-d", "resnext-29-16x64d", "inception-v2-30", "mlp-12", "imagenet-resnext-152-32x4d", "wrn-<d>-<k>"} {
		if !strings.Contains(out, name) {
			t.Errorf("arch list does not mention %s", name)
		}
	}
}

func TestArchShowJSON(t *testing.T) {
	out, err := runArch(t, "show", "--arch", "resnet-20", "--classes", "100", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	for _, k := range []string{"arch", "params", "macs", "modules", "relus_before", "relus_after", "erased"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks key %s: %s", k, out)
		}
	}
	// ResNet-20 with a 100-class head: 269,722 + 64*90 + 90.
	if m["arch"] != "resnet-20" || m["params"].(float64) != 275572 || m["modules"].(float64) != 9 || m["relus_before"].(float64) != 19 {
		t.Errorf("unexpected %s", out)
	}
}

func TestArchShowText(t *testing.T) {
	out, err := runArch(t, "show", "--arch", "preact-resnet-164", "--after-activation")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1,703,258", "modules  54", "163 before erasing"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestArchShowErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"show"}, "--arch is required"},
		{[]string{"show", "--arch", "resnet-21"}, "6n+2"},
		{[]string{"show", "--arch", "nope"}, "unknown architecture"},
		{[]string{"show", "--arch", "resnet-20", "--erase", "2"}, "proportion"},
		{[]string{"show", "--arch", "resnet-20", "--location", "sideways"}, "valid: last, first"},
		{[]string{"show", "--arch", "fig3-vgg-31", "--erase", "0.5", "--location", "first"}, "no ReLU before its trailing one"},
	} {
		if _, err := runArch(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestArchShowErase(t *testing.T) {
	for _, tc := range []struct {
		args                  []string
		erased, before, after int
		first                 string
		afterActivation       bool
	}{
		// Section 3.1: p = 0.5 erases modules 1, 3, 5, ...
		{[]string{"--arch", "resnet-110", "--erase", "0.5"}, 27, 109, 82, "stage1/block1", false},
		{[]string{"--arch", "resnet-110", "--erase", "0.5", "--location", "first"}, 27, 109, 82, "stage1/block1", false},
		// Figure 3(a): 20% of the 30 one-ReLU modules.
		{[]string{"--arch", "fig3-vgg-31", "--erase", "0.2"}, 6, 31, 25, "stage1/block1", false},
		// Pre-activation nets are converted first.
		{[]string{"--arch", "preact-resnet-164", "--erase", "1"}, 54, 163, 109, "stage1/block1", true},
		// Inception: one ReLU per branch, four per module.
		{[]string{"--arch", "inception-v2-30", "--erase", "0.5"}, 15, 211, 151, "stage1/block1", false},
		{[]string{"--arch", "mlp-12", "--erase", "1"}, 11, 11, 0, "layer1", false},
	} {
		out, err := runArch(t, append([]string{"show", "--json"}, tc.args...)...)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		var m struct {
			Params, Modules int
			ReLUsBefore     int      `json:"relus_before"`
			ReLUsAfter      int      `json:"relus_after"`
			Erased          []string `json:"erased"`
			AfterActivation bool     `json:"after_activation"`
		}
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatal(err)
		}
		if len(m.Erased) != tc.erased || m.ReLUsBefore != tc.before || m.ReLUsAfter != tc.after || m.Erased[0] != tc.first || m.AfterActivation != tc.afterActivation {
			t.Errorf("%v: %d erased (first %s), ReLUs %d -> %d, after-activation %v; want %d (%s), %d -> %d, %v",
				tc.args, len(m.Erased), m.Erased[0], m.ReLUsBefore, m.ReLUsAfter, m.AfterActivation, tc.erased, tc.first, tc.before, tc.after, tc.afterActivation)
		}
	}
}

// TestArchShowModuleReport: with --erase the output lists every module
// with its kind, trailing ReLU and whether the proportion picked it.
func TestArchShowModuleReport(t *testing.T) {
	out, err := runArch(t, "show", "--arch", "fig3-vgg-7", "--erase", "0.5", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Report []struct {
			Name     string   `json:"name"`
			Kind     string   `json:"kind"`
			Trailing []string `json:"trailing_relus"`
			Erased   bool     `json:"erased"`
		} `json:"module_report"`
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Report) != 6 {
		t.Fatalf("%d modules reported, want 6: %s", len(m.Report), out)
	}
	for i, r := range m.Report {
		if r.Kind != "plain" || len(r.Trailing) != 1 || !strings.HasPrefix(r.Trailing[0], "ReLU") || r.Erased != (i%2 == 0) {
			t.Errorf("module %d: %+v; want a plain module with one trailing ReLU, erased %v", i, r, i%2 == 0)
		}
	}
	text, err := runArch(t, "show", "--arch", "fig3-vgg-7", "--erase", "0.5")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"MODULE", "TRAILING RELU", "stage1/block1  plain", "stage3/block2"} {
		if !strings.Contains(text, want) {
			t.Errorf("text output lacks %q:\n%s", want, text)
		}
	}
}

// TestArchShowDeviceArena: --device-arena plans the CUDA path's training
// step without a GPU; recomputing batch-norm outputs shrinks the arena in
// both precisions, and bf16 shrinks it against fp32; a negative batch is
// refused naming the flag.
func TestArchShowDeviceArena(t *testing.T) {
	out, err := runArch(t, "show", "--arch", "resnet-20", "--device-arena", "16", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var s archShow
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	a := s.DeviceArena
	if a == nil || a.Batch != 16 {
		t.Fatalf("device arena %+v", a)
	}
	if !(a.FP32RecomputeMiB > 0 && a.FP32RecomputeMiB < a.FP32MiB && a.BF16RecomputeMiB > 0 && a.BF16RecomputeMiB < a.BF16MiB) {
		t.Errorf("device arena %+v: recomputing should shrink both", a)
	}
	// bf16 stores the activations kept for the backward pass in bf16
	// (docs/CUDA.md "bf16 mixed precision"): well under the fp32 arena.
	if !(a.BF16MiB < 0.8*a.FP32MiB && a.BF16RecomputeMiB < 0.8*a.FP32RecomputeMiB) {
		t.Errorf("device arena %+v: bf16 should be under 0.8x fp32", a)
	}
	text, err := runArch(t, "show", "--arch", "resnet-20", "--device-arena", "16")
	if err != nil || !strings.Contains(text, "device arena") {
		t.Errorf("text output: %v\n%s", err, text)
	}
	if _, err := runArch(t, "show", "--arch", "resnet-20", "--device-arena", "-1"); err == nil || !strings.Contains(err.Error(), "--device-arena") {
		t.Errorf("--device-arena -1: %v", err)
	}
}
