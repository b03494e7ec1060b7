package graph

import (
	"fmt"
	"slices"
	"strings"

	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
)

// Gorgonia v0.9.18 writes several layers as patterns of element-wise
// nodes instead of one op. gorgonia.Rectify(x) (nn.go) is two nodes:
//
//	cmp = x >= 0   (an elemBinOp ">=" with retSame: 1 where x ≥ 0, else 0)
//	y   = x ⊙ cmp  (HadamardProd)
//
// with 0 the package's shared scalar constant of x's dtype. Its element
// types are unexported, so they are recognised by the String Gorgonia gives
// them (op_math.go: "<operator> <retSame>"): ">= true" and "⊙ false". The
// tests build the real gorgonia.Rectify and check it is recognised, so a
// Gorgonia version that changes the pattern fails them.
const (
	gorgoniaGte = ">= true"
	gorgoniaLt  = "< true"
	gorgoniaMul = "⊙ false"
	gorgoniaAdd = "+ false"
)

// opString is the String of n's op, "" for a variable.
func opString(n *gorgonia.Node) string {
	if n.Op() == nil {
		return ""
	}
	return n.Op().String()
}

// binaryString is the String of a Gorgonia binary op (gorgonia.BinaryOp:
// element-wise and matrix products), "" for any other node: most ops print
// their parameters, so the type is checked first.
func binaryString(n *gorgonia.Node) string {
	if _, ok := n.Op().(gorgonia.BinaryOp); !ok {
		return ""
	}
	return n.Op().String()
}

// IsReLU reports whether n is a rectifier: the library's ops.ReLU, or the
// last node of gorgonia.Rectify's pattern.
func IsReLU(n *gorgonia.Node) bool {
	_, ok := ReLUInput(n)
	return ok
}

// ReLUInput returns the node a rectifier n rectifies (see IsReLU).
func ReLUInput(n *gorgonia.Node) (*gorgonia.Node, bool) {
	if ops.IsReLU(n) {
		return Children(n)[0], true
	}
	if x, _, ok := rectifyPattern(n); ok {
		return x, true
	}
	return nil, false
}

// rectifyPattern matches n = x ⊙ (x >= 0) (either operand order) and
// returns x and the comparison node.
func rectifyPattern(n *gorgonia.Node) (x, cmp *gorgonia.Node, ok bool) {
	if binaryString(n) != gorgoniaMul {
		return nil, nil, false
	}
	kids := Children(n)
	if len(kids) != 2 {
		return nil, nil, false
	}
	for i := 0; i < 2; i++ {
		if v, ok := compareWithZero(kids[1-i], gorgoniaGte); ok && v == kids[i] {
			return kids[i], kids[1-i], true
		}
	}
	return nil, nil, false
}

// compareWithZero matches n = v <op> 0 for a comparison op string such as
// ">= true", with 0 a scalar constant, and returns v.
func compareWithZero(n *gorgonia.Node, op string) (*gorgonia.Node, bool) {
	if binaryString(n) != op {
		return nil, false
	}
	kids := Children(n)
	if len(kids) != 2 || !isConstant(kids[1]) || !kids[1].IsScalar() || ScalarOf(kids[1].Value()) != 0 {
		return nil, false
	}
	return kids[0], true
}

// Activation names the activation n computes: "ReLU" for a rectifier (see
// IsReLU), the Gorgonia function for the activations the erase pass cannot
// erase (gorgonia.LeakyRelu, gorgonia.Sigmoid, ...), the library's "PReLU",
// or "" when n is not an activation.
func Activation(n *gorgonia.Node) string {
	switch {
	case IsReLU(n):
		return "ReLU"
	case ops.IsPReLU(n):
		return "PReLU"
	case isLeakyReLU(n):
		return "gorgonia.LeakyRelu"
	}
	// Gorgonia's element-wise unary ops print their function's name.
	if n.Op() == nil || n.Op().Arity() != 1 {
		return ""
	}
	switch s := opString(n); s {
	case "sigmoid", "tanh", "softplus", "exp", "log1p", "expm1":
		return "gorgonia." + strings.ToUpper(s[:1]) + s[1:]
	}
	return ""
}

// isLeakyReLU matches gorgonia.LeakyRelu(x, alpha) (nn.go):
// (x ⊙ (x >= 0)) + ((x ⊙ (x < 0)) ⊙ alpha), with the rectified half
// possibly already a ReLU op (after Canonicalize).
func isLeakyReLU(n *gorgonia.Node) bool {
	if binaryString(n) != gorgoniaAdd {
		return false
	}
	kids := Children(n)
	if len(kids) != 2 {
		return false
	}
	x, ok := ReLUInput(kids[0])
	if !ok || binaryString(kids[1]) != gorgoniaMul {
		return false
	}
	neg := Children(kids[1])[0]
	if binaryString(neg) != gorgoniaMul {
		return false
	}
	nk := Children(neg)
	v, ok := compareWithZero(nk[1], gorgoniaLt)
	return ok && v == x && nk[0] == x
}

// Describe names a node for an error message: the activation it computes
// (see Activation) or its op, and Gorgonia's name for the node.
func Describe(n *gorgonia.Node) string {
	if a := Activation(n); a != "" {
		return fmt.Sprintf("%s node %q", a, n.Name())
	}
	return fmt.Sprintf("node %q (op %v)", n.Name(), n.Op())
}

// Canonicalize returns g with every gorgonia.Rectify pattern replaced by one
// ops.ReLU node, so that every pass (the erase pass, the ReLU counts, the
// inference fusion, the CUDA lowering) sees one ReLU op per rectifier. The
// modules carry over: a module whose output was the pattern's last node
// ends in the ReLU. A graph without such patterns is returned as is, with
// a nil Mapping; else the result is a Rewrite sharing g's parameters and
// ops, with the mapping from g's nodes (a pattern's two nodes map to its
// ReLU), and g is not modified. erase.Apply canonicalises before it erases.
func Canonicalize(g *Graph) (*Graph, Mapping, error) {
	// Most graphs have no Rectify: find that out by op strings alone.
	if !slices.ContainsFunc(g.expr.AllNodes(), func(n *gorgonia.Node) bool { _, _, ok := rectifyPattern(n); return ok }) {
		return g, nil, nil
	}
	keep := g.forwardSet()
	readers := map[*gorgonia.Node]int{}
	rectifier := map[*gorgonia.Node]*gorgonia.Node{} // comparison node -> its pattern's last node
	for _, n := range g.expr.AllNodes() {
		if !keep[n] {
			continue
		}
		for _, k := range Children(n) {
			readers[k]++
		}
		if _, cmp, ok := rectifyPattern(n); ok {
			rectifier[cmp] = n
		}
	}
	if len(rectifier) == 0 {
		return g, nil, nil
	}
	// A named output or a module's output is read from outside.
	for _, n := range g.outputs {
		readers[n]++
	}
	for _, m := range g.modules {
		readers[m.Output]++
	}
	// A comparison read by anything but its rectifier stays; the pattern's
	// last node still becomes a ReLU.
	relus := map[*gorgonia.Node]*gorgonia.Node{} // source last node -> emitted ReLU
	subst := func(n *gorgonia.Node, children []*gorgonia.Node, dst *Graph) (*gorgonia.Node, error) {
		if last, ok := rectifier[n]; ok && readers[n] == 1 {
			// Emit the ReLU where the comparison was, so both pattern
			// nodes map to it and module members stay inside the module.
			r, err := ops.ReLU(children[0])
			if err != nil {
				return nil, fmt.Errorf("canonicalize gorgonia.Rectify at %v: %w", last, err)
			}
			relus[last] = r
			return r, nil
		}
		if r, ok := relus[n]; ok {
			return r, nil
		}
		if x, _, ok := rectifyPattern(n); ok {
			kids := Children(n)
			i := 0
			if kids[1] == x {
				i = 1
			}
			return ops.ReLU(children[i])
		}
		return nil, nil
	}
	out, m, err := Rewrite(g, subst, RewriteOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("canonicalize: %w", err)
	}
	return out, m, nil
}
