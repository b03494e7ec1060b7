package ops

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestEveryOpDescribesItself: every type of the package with a Do method
// (every op) has a Describe method, so a back end never needs its Go type.
func TestEveryOpDescribesItself(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	methods := map[string]map[string]bool{}
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
			if !ok || fd.Recv == nil {
				continue
			}
			typ := fd.Recv.List[0].Type
			if st, ok := typ.(*ast.StarExpr); ok {
				typ = st.X
			}
			if id, ok := typ.(*ast.Ident); ok {
				if methods[id.Name] == nil {
					methods[id.Name] = map[string]bool{}
				}
				methods[id.Name][fd.Name.Name] = true
			}
		}
	}
	ops := 0
	for typ, m := range methods {
		if !m["Do"] {
			continue
		}
		ops++
		if !m["Describe"] {
			t.Errorf("op %s has no Describe method (graph/ops/describe.go)", typ)
		}
	}
	if ops < 30 {
		t.Fatalf("found only %d op types", ops)
	}
}

// describeGraph builds every op of the library and the backward ops of
// every differentiable one; it returns the nodes by kind.
func describeGraph(t *testing.T) map[Kind][]*gorgonia.Node {
	t.Helper()
	g := gorgonia.NewGraph()
	dt := tensor.Float64
	v4 := func(name string, s ...int) *gorgonia.Node {
		return gorgonia.NewTensor(g, dt, len(s), gorgonia.WithShape(s...), gorgonia.WithName(name))
	}
	must := func(n *gorgonia.Node, err error) *gorgonia.Node {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	x := v4("x", 2, 4, 6, 6)
	conv := must(Conv2D(x, v4("w", 6, 2, 3, 3), v4("b", 6), ConvParams{StrideH: 2, StrideW: 1, PadH: 1, PadW: 0, Groups: 2}))
	bn := must(BatchNorm(conv, v4("gamma", 6), v4("beta", 6), BatchNormConfig{Momentum: 0.2, Mode: NewMode(),
		RunningMean: tensor.New(tensor.Of(dt), tensor.WithShape(6)), RunningVar: tensor.New(tensor.Of(dt), tensor.WithShape(6))}))
	relu := must(ReLU(bn))
	add := must(Add(relu, relu))
	prelu := must(PReLU(add, v4("alpha", 6)))
	pad := must(ZeroPadShortcut(prelu, 10, 2))
	mp := must(MaxPool2D(pad, 3, 2, 1))
	ap := must(AvgPool2D(pad, 2, 1, 0))
	cat := must(Concat(mp, ap))
	drop := must(Dropout(cat, 0.25, NewMode(), 7))
	sd := must(StochasticDepth(drop, 0.75, NewMode(), 8))
	gap := must(GlobalAvgPool(sd))
	flat := must(Flatten(sd))
	ln := must(LayerNorm(flat, v4("lg", flat.Shape()[1]), v4("lb", flat.Shape()[1]), 1e-3))
	lin := must(Linear(ln, v4("lw", 3, flat.Shape()[1]), v4("lbias", 3)))
	labels := gorgonia.NewTensor(g, tensor.Int, 1, gorgonia.WithShape(2), gorgonia.WithName("labels"))
	loss, _, err := SoftmaxCrossEntropy(lin, labels)
	if err != nil {
		t.Fatal(err)
	}
	must(Pin(gap, tensor.New(tensor.Of(dt), tensor.WithShape(gap.Shape()...))))
	for _, f := range []struct {
		n  *gorgonia.Node
		in gorgonia.Nodes
	}{
		{conv, nil}, {bn, nil}, {relu, gorgonia.Nodes{bn}}, {add, gorgonia.Nodes{relu, relu}}, {prelu, nil},
		{pad, gorgonia.Nodes{prelu}}, {mp, gorgonia.Nodes{pad}}, {ap, gorgonia.Nodes{pad}}, {cat, gorgonia.Nodes{mp, ap}},
		{drop, gorgonia.Nodes{cat}}, {sd, gorgonia.Nodes{drop}}, {gap, gorgonia.Nodes{sd}}, {flat, gorgonia.Nodes{sd}},
		{ln, nil}, {lin, nil}, {loss, gorgonia.Nodes{lin, labels}},
	} {
		n, in := f.n, f.in
		if in == nil {
			in = inputsOf(n)
		}
		var grad *gorgonia.Node
		if n == loss {
			grad = gorgonia.NewScalar(g, dt, gorgonia.WithName("dloss"))
		} else {
			grad = v4("d"+n.Name(), n.Shape()...)
		}
		diff, ok := n.Op().(gorgonia.SDOp)
		if !ok {
			t.Fatalf("%v is not differentiable", n.Op())
		}
		if _, err := diff.SymDiff(in, n, grad); err != nil {
			t.Fatalf("%v: %v", n.Op(), err)
		}
	}
	byKind := map[Kind][]*gorgonia.Node{}
	for _, n := range g.AllNodes() {
		if n.Op() == nil {
			continue
		}
		if _, ok := n.Op().(Describer); !ok {
			continue // Gorgonia's own ops in SymDiffs
		}
		k := Describe(n.Op()).Kind
		byKind[k] = append(byKind[k], n)
	}
	return byKind
}

// inputsOf is n's inputs in order (for ops whose inputs are all named variables).
func inputsOf(n *gorgonia.Node) gorgonia.Nodes {
	it := n.Graph().From(n.ID())
	var out gorgonia.Nodes
	for it.Next() {
		out = append(out, it.Node().(*gorgonia.Node))
	}
	return out
}

// TestDescriptions: every kind occurs in a graph of every op and its
// gradients, the attributes are the constructors', and each backward op
// that has a forward op gives the op it differentiates.
func TestDescriptions(t *testing.T) {
	byKind := describeGraph(t)
	for _, k := range Kinds() {
		if len(byKind[k]) == 0 {
			t.Errorf("no op describes itself as %v", k)
		}
	}
	if n := byKind[KindUnknown]; len(n) > 0 {
		t.Errorf("ops of unknown kind: %v", n)
	}
	one := func(k Kind) Desc {
		t.Helper()
		if len(byKind[k]) == 0 {
			t.Fatalf("no %v", k)
		}
		return Describe(byKind[k][0].Op())
	}
	wantConv := ConvParams{StrideH: 2, StrideW: 1, PadH: 1, PadW: 0, Groups: 2}
	for _, k := range []Kind{KindConv2D, KindConv2DDataGrad, KindConv2DFilterGrad} {
		if d := one(k); d.Conv != wantConv {
			t.Errorf("%v: geometry %+v, want %+v", k, d.Conv, wantConv)
		}
	}
	if !one(KindConv2D).Bias || !one(KindLinear).Bias {
		t.Error("the bias of a convolution or a linear layer is not described")
	}
	if d := one(KindBatchNorm).Norm; d.Momentum != 0.2 || d.Eps != 1e-5 || d.RunningMean == nil || d.RunningVar == nil {
		t.Errorf("batch norm: %+v", d)
	}
	if d := one(KindLayerNorm).Norm; d.Eps != 1e-3 {
		t.Errorf("layer norm: %+v", d)
	}
	for _, k := range []Kind{KindZeroPadShortcut, KindZeroPadShortcutGrad} {
		if d := one(k).Pad; d != (PadAttrs{In: 6, Out: 10, Stride: 2}) || d.Before() != 2 {
			t.Errorf("%v: %+v", k, d)
		}
	}
	if d := one(KindMaxPoolGrad).Pool; d != (PoolAttrs{Kernel: 3, Stride: 2, Pad: 1}) {
		t.Errorf("max pool gradient: %+v", d)
	}
	if d := one(KindAvgPool).Pool; d != (PoolAttrs{Kernel: 2, Stride: 1}) {
		t.Errorf("average pool: %+v", d)
	}
	if d := one(KindDropout).Random; d != (RandomAttrs{Seed: 7, Rate: 0.25}) {
		t.Errorf("dropout: %+v", d)
	}
	if d := one(KindStochasticDepth).Random; d != (RandomAttrs{Seed: 8, Survival: 0.75}) {
		t.Errorf("stochastic depth: %+v", d)
	}
	var slices []SliceAttrs
	for _, n := range byKind[KindConcatSlice] {
		slices = append(slices, Describe(n.Op()).Slice)
	}
	if len(slices) != 2 || slices[0].Offset+slices[0].Width != slices[1].Offset && slices[1].Offset+slices[1].Width != slices[0].Offset {
		t.Errorf("concat slices %+v do not tile the channels", slices)
	}
	rows := map[int]int{}
	for _, n := range byKind[KindRow] {
		rows[Describe(n.Op()).Slice.Offset]++
	}
	if rows[0] != 2 || rows[1] != 2 { // batch norm's and layer norm's (dgamma, dbeta)
		t.Errorf("rows %v, want two of row 0 and two of row 1", rows)
	}
	if one(KindPin).Target == nil {
		t.Error("a pin does not give its target")
	}
	forward := map[Kind]Kind{
		KindBatchNormParamGrad: KindBatchNorm, KindBatchNormInputGrad: KindBatchNorm,
		KindZeroPadShortcutGrad: KindZeroPadShortcut, KindCrossEntropyGrad: KindCrossEntropy,
		KindDropoutGrad: KindDropout, KindStochasticDepthGrad: KindStochasticDepth,
		KindLayerNormInputGrad: KindLayerNorm, KindLayerNormParamGrad: KindLayerNorm,
	}
	for _, k := range Kinds() {
		for _, n := range byKind[k] {
			b, ok := n.Op().(Backward)
			want, has := forward[k]
			if ok != has {
				t.Errorf("%v: gives its forward op %v, want %v", k, ok, has)
				continue
			}
			if !ok {
				continue
			}
			fw := byKind[want][0].Op()
			if b.Forward() != fw {
				t.Errorf("%v: forward %v, want %v", k, b.Forward(), fw)
			}
		}
	}
}

func TestKindNames(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range append(Kinds(), KindUnknown) {
		s := k.String()
		if seen[s] || strings.HasPrefix(s, "Kind(") {
			t.Errorf("kind %d has name %q", int(k), s)
		}
		seen[s] = true
	}
	if len(kindNames) != int(kindEnd) {
		t.Errorf("%d names for %d kinds", len(kindNames), kindEnd)
	}
	if s := kindEnd.String(); s != "Kind(41)" {
		t.Errorf("out-of-range kind: %q", s)
	}
}
