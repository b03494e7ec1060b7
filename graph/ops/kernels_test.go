package ops

import (
	"fmt"
	"strings"
	"testing"

	"gorgonia.org/gorgonia"
)

// testEnv is an Env running k, for tests that compare kernels.
func testEnv(t testing.TB, k Kernels) *Env {
	t.Helper()
	e, err := NewEnv(k)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// usingEnv wraps an op constructor's result for an opcheck Build: the op
// runs with e, and so do the backward ops its SymDiff makes.
func usingEnv(e *Env) func(*gorgonia.Node, error) (*gorgonia.Node, error) {
	return func(n *gorgonia.Node, err error) (*gorgonia.Node, error) {
		if err != nil {
			return nil, err
		}
		u, ok := n.Op().(EnvUser)
		if !ok {
			return nil, fmt.Errorf("%v runs no configurable kernels", n.Op())
		}
		u.UseEnv(e)
		return n, nil
	}
}

func TestKernelsValidate(t *testing.T) {
	t.Parallel()
	k := DefaultKernels()
	if err := k.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, bad := range map[string]func(*Kernels){
		"TargetCols":           func(k *Kernels) { k.TargetCols = 0 },
		"WinogradScratchBytes": func(k *Kernels) { k.WinogradScratchBytes = -1 },
		"ColPad":               func(k *Kernels) { k.ColPad = -1 },
		"MinParallelWork":      func(k *Kernels) { k.MinParallelWork = -1 },
	} {
		k := DefaultKernels()
		bad(&k)
		_, err := NewEnv(k)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: NewEnv error %v, want one naming %s", name, err, name)
		}
	}
}
