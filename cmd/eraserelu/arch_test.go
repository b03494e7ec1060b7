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
		{[]string{"show", "--arch", "resnet-20", "--location", "middle"}, "last or first"},
	} {
		if _, err := runArch(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}
