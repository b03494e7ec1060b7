package cuda

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"
)

// TestDeviceCopiesOnItsStream: every memory copy and memset of the
// executor (device.go) is the Async form on the executor's own stream.
// The stream is non-blocking, so the legacy stream's copies and memsets
// are not ordered with its kernels or with each other's completion: the
// arena's cuMemsetD8 once zeroed the loss-gradient seed uploaded after it
// (every gradient 0, training at chance on the H200). Checked on the
// source, so the CPU-only CI sees it.
func TestDeviceCopiesOnItsStream(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "device.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "C" {
			return true
		}
		name := sel.Sel.Name
		if !strings.HasPrefix(name, "cuMemcpy") && !strings.HasPrefix(name, "cuMemset") {
			return true
		}
		calls++
		pos := fset.Position(call.Pos())
		if !strings.HasSuffix(name, "Async") {
			t.Errorf("%s: C.%s runs on the legacy stream; use the Async form on d.stream", pos, name)
			return true
		}
		last, ok := call.Args[len(call.Args)-1].(*ast.SelectorExpr)
		if !ok || last.Sel.Name != "stream" {
			t.Errorf("%s: C.%s is not queued on the executor's stream (d.stream)", pos, name)
		}
		return true
	})
	if calls < 4 {
		t.Errorf("found %d copies and memsets in device.go; the check no longer sees them", calls)
	}
}
