package cuda

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// opTypes lists the types of graph/ops with a Do method: every op of the library.
func opTypes(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("../graph/ops/*.go")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv == nil || fd.Name.Name != "Do" {
				continue
			}
			typ := fd.Recv.List[0].Type
			if st, ok := typ.(*ast.StarExpr); ok {
				typ = st.X
			}
			if id, ok := typ.(*ast.Ident); ok {
				seen[id.Name] = true
			}
		}
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestEveryOpHasALowering fails when graph/ops gains an op that has neither
// device kernels (lowerers) nor an entry in pending saying why not.
func TestEveryOpHasALowering(t *testing.T) {
	types := opTypes(t)
	if len(types) < 30 {
		t.Fatalf("found only %d op types in graph/ops: %v", len(types), types)
	}
	for _, name := range types {
		if name == "PinOp" {
			continue // pins alias their input's buffer
		}
		_, low := lowerers[name]
		_, pend := pending[name]
		switch {
		case !low && !pend:
			t.Errorf("op %s of graph/ops has no device lowering (add it to lowerers in cuda/lower.go, or to pending with the reason)", name)
		case low && pend:
			t.Errorf("op %s is both lowered and pending", name)
		}
	}
	for name := range lowerers {
		if !contains(types, name) {
			t.Errorf("lowerers names %s, which graph/ops no longer has", name)
		}
	}
	for name := range pending {
		if !contains(types, name) {
			t.Errorf("pending names %s, which graph/ops no longer has", name)
		}
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// TestCatalogMatchesSource checks every kernel of kernels/ops.cu against
// the catalog: same names, and the parameter list is Ints int parameters,
// then Floats float parameters, then Buffers pointers.
func TestCatalogMatchesSource(t *testing.T) {
	src, err := os.ReadFile("kernels/ops.cu")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`__global__\s+void\s+(\w+)\s*\(([^)]*)\)`)
	found := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		name, params := m[1], strings.Fields(strings.ReplaceAll(m[2], ",", " , "))
		found[name] = true
		k, ok := Kernels[name]
		if !ok {
			t.Errorf("kernel %s of ops.cu is not in the catalog", name)
			continue
		}
		var kinds []string
		for _, p := range strings.Split(m[2], ",") {
			p = strings.TrimSpace(p)
			switch {
			case strings.Contains(p, "*"):
				kinds = append(kinds, "ptr")
			case strings.HasPrefix(p, "int "):
				kinds = append(kinds, "int")
			case strings.HasPrefix(p, "float "):
				kinds = append(kinds, "float")
			default:
				t.Errorf("kernel %s: parameter %q of unknown kind", name, p)
			}
		}
		var want []string
		for i := 0; i < k.Ints; i++ {
			want = append(want, "int")
		}
		for i := 0; i < k.Floats; i++ {
			want = append(want, "float")
		}
		for i := 0; i < k.Buffers; i++ {
			want = append(want, "ptr")
		}
		if strings.Join(kinds, ",") != strings.Join(want, ",") {
			t.Errorf("kernel %s: ops.cu parameters %v, catalog %v", name, kinds, want)
		}
		_ = params
	}
	for name := range Kernels {
		if !found[name] {
			t.Errorf("catalog kernel %s is not in ops.cu", name)
		}
	}
}

// TestPTXIsCurrent checks the committed PTX has an entry for every kernel
// (its targets and source hash: package kernels' tests).
func TestPTXIsCurrent(t *testing.T) {
	ptx, err := os.ReadFile("kernels/ops.ptx")
	if err != nil {
		t.Fatal(err)
	}
	for name := range Kernels {
		if !strings.Contains(string(ptx), ".entry "+name+"(") {
			t.Errorf("ops.ptx has no entry %s: run go generate ./cuda/kernels", name)
		}
	}
}
