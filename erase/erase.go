// Package erase implements EraseReLU (Dong et al., section 3.1): a rewrite
// of a finished, module-annotated graph that removes the trailing ReLU of a
// chosen set of modules before the graph is compiled.
//
// Modules are chosen by proportion, evenly spread as in the paper (p = 0.5
// erases modules 1, 3, 5, ...), by name, or by kind. The ReLU to touch is the
// module's trailing ReLU (the paper's ER), its first inner ReLU (ER*), or
// every ReLU of the module; it is removed (identity) or replaced by a
// per-channel PReLU (the PReLU columns of Table 1). The result is a new graph
// that shares the original's parameters unless asked to copy them.
//
// A ReLU is the library's ops.ReLU or Gorgonia's own gorgonia.Rectify
// (several nodes, which Apply first turns into one ReLU with
// graph.Canonicalize). The modules come from the graph's builder, from
// graph.Graph.MarkModule, or from graph.DiscoverModules on a graph with no
// annotations at all.
package erase

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"github.com/eraserelu/eraserelu/layers"
	"gorgonia.org/gorgonia"
)

// Location says which ReLU of a selected module is erased.
type Location int

const (
	// Last is the module's trailing ReLU: the one whose output is the
	// module's output (through a trailing dropout), or for a module whose
	// output concatenates branches (inception), the last ReLU of each branch.
	Last Location = iota
	// First is the first ReLU of the module that is not a trailing one
	// (the paper's ER*: the middle ReLU of a residual block).
	First
	// All is every ReLU of the module (with PReLU: Table 1's PReLU-all).
	All
)

func (l Location) String() string {
	switch l {
	case Last:
		return "last"
	case First:
		return "first"
	case All:
		return "all"
	}
	return fmt.Sprintf("Location(%d)", int(l))
}

// ParseLocation reads "last", "first" or "all".
func ParseLocation(s string) (Location, error) {
	switch strings.ToLower(s) {
	case "last", "":
		return Last, nil
	case "first", "middle":
		return First, nil
	case "all":
		return All, nil
	}
	return 0, fmt.Errorf("unknown erase location %q (valid: last, first, all)", s)
}

// Replacement says what takes the erased ReLU's place.
type Replacement int

const (
	// Identity removes the ReLU: its consumers read its input.
	Identity Replacement = iota
	// PReLU puts a per-channel PReLU (slopes initialised to 0.25) in its place.
	PReLU
)

func (r Replacement) String() string {
	switch r {
	case Identity:
		return "identity"
	case PReLU:
		return "prelu"
	}
	return fmt.Sprintf("Replacement(%d)", int(r))
}

// ParseReplacement reads "identity" (or "") or "prelu".
func ParseReplacement(s string) (Replacement, error) {
	switch strings.ToLower(s) {
	case "identity", "":
		return Identity, nil
	case "prelu":
		return PReLU, nil
	}
	return 0, fmt.Errorf("unknown replacement %q (valid: identity, prelu)", s)
}

// Options select what to erase. Exactly one of Proportion or Modules chooses
// the modules; Kinds narrows the candidates first.
type Options struct {
	// Proportion of candidate modules to erase, in [0, 1], spread evenly.
	Proportion float64
	// Modules names the modules to erase, instead of a proportion.
	Modules []string
	// Kinds limits the candidates to modules of these kinds (all if empty).
	Kinds []graph.Kind
	// Location is which ReLU of each chosen module to erase.
	Location Location
	// Replacement is what replaces it.
	Replacement Replacement
	// CopyParams gives the erased graph its own copy of the parameters;
	// by default it shares them with the original.
	CopyParams bool
	// OutsideModules also replaces the ReLUs that belong to no module (a
	// stem's), so that Location All reaches every ReLU of the net: Table 1's
	// PReLU-all replaces "all ReLU layers".
	OutsideModules bool
}

// Report says what Apply did.
type Report struct {
	// Modules is every leaf module of the graph in graph order: what the
	// proportion chose from and what it picked.
	Modules []ModuleReport
	// Candidates is the number of modules the proportion applied to.
	Candidates int
	// Erased names the chosen modules in graph order.
	Erased []string
	// Nodes names the ReLU nodes removed or replaced, per chosen module.
	Nodes map[string][]string
	// ReLUsBefore and ReLUsAfter count ReLU nodes in the forward graph.
	ReLUsBefore, ReLUsAfter int
	// ParamsBefore and ParamsAfter count trainable scalars; they differ only
	// by the PReLU slopes a PReLU replacement adds.
	ParamsBefore, ParamsAfter int
}

// ModuleReport is one module's line of the report.
type ModuleReport struct {
	Name string     `json:"name"`
	Kind graph.Kind `json:"kind"`
	// Trailing names the module's trailing ReLU nodes, empty when it has
	// none (a pre-activation block ends in its addition).
	Trailing []string `json:"trailing_relus"`
	// Candidate says whether the module's kind made it a candidate.
	Candidate bool `json:"candidate"`
	// Erased says whether the pass chose the module.
	Erased bool `json:"erased"`
}

// Write prints the report as a table, one module a line, then the totals.
func (r *Report) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODULE\tKIND\tTRAILING RELU\tERASED")
	for _, m := range r.Modules {
		trailing := strings.Join(m.Trailing, ", ")
		if trailing == "" {
			trailing = "none"
		}
		erased := "no"
		switch {
		case m.Erased && slices.Equal(r.Nodes[m.Name], m.Trailing):
			erased = "yes"
		case m.Erased:
			erased = "yes: " + strings.Join(r.Nodes[m.Name], ", ")
		case !m.Candidate:
			erased = "no (not a candidate kind)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Name, m.Kind, trailing, erased)
	}
	fmt.Fprintf(tw, "\n%d of %d candidate modules erased; ReLUs %d -> %d; params %d -> %d\n",
		len(r.Erased), r.Candidates, r.ReLUsBefore, r.ReLUsAfter, r.ParamsBefore, r.ParamsAfter)
	return tw.Flush()
}

// Select returns the 0-based indices of the modules erased out of n at
// proportion p: module k (1-based) is erased iff ceil(k·p) > ceil((k−1)·p).
// It always selects ceil(n·p) modules, the first among them module 1.
func Select(n int, p float64) []int {
	var out []int
	for k := 1; k <= n; k++ {
		if ceil(float64(k)*p) > ceil(float64(k-1)*p) {
			out = append(out, k-1)
		}
	}
	return out
}

// ceil tolerates the rounding of k·p in floating point, so that 20·0.05
// counts as exactly 1.
func ceil(x float64) float64 { return math.Ceil(x - 1e-9) }

// Apply erases ReLUs from g as opt says and returns the rewritten graph,
// ready to compile. g itself is not modified. Modules are chosen, and the
// report and errors name nodes, in g as the caller built it; the result is
// canonical (graph.Canonicalize): every remaining rectifier is one ops.ReLU
// node.
func Apply(g *graph.Graph, opt Options) (*graph.Graph, *Report, error) {
	chosen, candidates, err := choose(g, opt)
	if err != nil {
		return nil, nil, err
	}
	rep := &Report{Candidates: candidates, Nodes: map[string][]string{}, ParamsBefore: g.ParamCount()}
	// targets maps each ReLU to replace to the scope its PReLU slopes live in.
	targets := map[*gorgonia.Node]string{}
	picked := map[*graph.Module]bool{}
	for _, m := range chosen {
		relus, err := Locate(m, opt.Location)
		if err != nil {
			return nil, nil, err
		}
		picked[m] = true
		rep.Erased = append(rep.Erased, m.Name)
		for _, r := range relus {
			targets[r] = m.Name
			rep.Nodes[m.Name] = append(rep.Nodes[m.Name], r.Name())
		}
	}
	if opt.OutsideModules {
		for i, r := range reLUsOutsideModules(g) {
			scope := fmt.Sprintf("outside%d", i)
			targets[r] = scope
			rep.Nodes[scope] = append(rep.Nodes[scope], r.Name())
		}
	}
	canon, canonOf, err := graph.Canonicalize(g)
	if err != nil {
		return nil, nil, fmt.Errorf("erase: %w", err)
	}
	if canonOf != nil {
		mapped := make(map[*gorgonia.Node]string, len(targets))
		for r, scope := range targets {
			mapped[canonOf[r]] = scope
		}
		targets = mapped
	}
	for _, m := range g.Leaves() {
		line := ModuleReport{Name: m.Name, Kind: m.Kind, Erased: picked[m], Candidate: isCandidate(m, opt.Kinds)}
		if trailing, err := trailingReLUs(m.Output, memberSet(m)); err == nil {
			for _, r := range trailing {
				line.Trailing = append(line.Trailing, r.Name())
			}
		}
		rep.Modules = append(rep.Modules, line)
	}
	subst := func(n *gorgonia.Node, children []*gorgonia.Node, dst *graph.Graph) (*gorgonia.Node, error) {
		scope, ok := targets[n]
		if !ok {
			return nil, nil
		}
		x, _ := graph.ReLUInput(n)
		for i, k := range graph.Children(n) {
			if k == x {
				x = children[i]
				break
			}
		}
		if opt.Replacement == Identity {
			return x, nil
		}
		var out *gorgonia.Node
		err := dst.Within(scope, func() error {
			var err error
			out, err = layers.PReLU(dst, x, layers.Name("erase_prelu"), layers.NoDecay(true))
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", scope, err)
		}
		return out, nil
	}
	out, _, err := graph.Rewrite(canon, subst, graph.RewriteOptions{CopyParams: opt.CopyParams})
	if err != nil {
		return nil, nil, fmt.Errorf("erase: %w", err)
	}
	rep.ReLUsBefore = CountReLUs(g)
	rep.ReLUsAfter = CountReLUs(out)
	rep.ParamsAfter = out.ParamCount()
	return out, rep, nil
}

// choose returns the modules to erase in graph order and the number of candidates.
func choose(g *graph.Graph, opt Options) ([]*graph.Module, int, error) {
	if math.IsNaN(opt.Proportion) || opt.Proportion < 0 || opt.Proportion > 1 {
		return nil, 0, fmt.Errorf("erase: proportion %v is outside [0, 1]", opt.Proportion)
	}
	if len(opt.Modules) > 0 && opt.Proportion != 0 {
		return nil, 0, fmt.Errorf("erase: give a proportion or module names, not both")
	}
	var candidates []*graph.Module
	for _, m := range g.Leaves() {
		if isCandidate(m, opt.Kinds) {
			candidates = append(candidates, m)
		}
	}
	if len(opt.Modules) > 0 {
		byName := map[string]*graph.Module{}
		for _, m := range g.Modules() {
			byName[m.Name] = m
		}
		want := map[*graph.Module]bool{}
		for _, name := range opt.Modules {
			m, ok := byName[name]
			if !ok {
				return nil, 0, fmt.Errorf("erase: no module named %q (modules: %s)", name, moduleNames(g.Modules(), 8))
			}
			want[m] = true
		}
		var out []*graph.Module
		for _, m := range g.Modules() {
			if want[m] {
				out = append(out, m)
			}
		}
		return out, len(candidates), nil
	}
	if len(candidates) == 0 && opt.Proportion > 0 {
		return nil, 0, fmt.Errorf("erase: the graph has no modules%s to erase from; find them with graph.DiscoverModules or mark them with graph.MarkModule", kindsNote(opt.Kinds))
	}
	var out []*graph.Module
	for _, i := range Select(len(candidates), opt.Proportion) {
		out = append(out, candidates[i])
	}
	return out, len(candidates), nil
}

func isCandidate(m *graph.Module, kinds []graph.Kind) bool {
	return len(kinds) == 0 || slices.Contains(kinds, m.Kind)
}

func kindsNote(kinds []graph.Kind) string {
	if len(kinds) == 0 {
		return ""
	}
	return fmt.Sprintf(" of kind %v", kinds)
}

func moduleNames(ms []*graph.Module, most int) string {
	var names []string
	for i, m := range ms {
		if i == most {
			names = append(names, fmt.Sprintf("... %d more", len(ms)-most))
			break
		}
		names = append(names, m.Name)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func memberSet(m *graph.Module) map[*gorgonia.Node]bool {
	members := make(map[*gorgonia.Node]bool, len(m.Members))
	for _, n := range m.Members {
		members[n] = true
	}
	return members
}

// Locate returns the ReLU nodes of m at the location (see graph.IsReLU for
// what a ReLU is).
func Locate(m *graph.Module, loc Location) ([]*gorgonia.Node, error) {
	trailing, err := trailingReLUs(m.Output, memberSet(m))
	switch loc {
	case Last:
		if err != nil {
			return nil, fmt.Errorf("module %s has no trailing ReLU: %w", m.Name, err)
		}
		return trailing, nil
	case First:
		for _, n := range m.Members {
			if graph.IsReLU(n) && !slices.Contains(trailing, n) {
				return []*gorgonia.Node{n}, nil
			}
		}
		return nil, fmt.Errorf("module %s has no ReLU before its trailing one", m.Name)
	case All:
		var all []*gorgonia.Node
		for _, n := range m.Members {
			if graph.IsReLU(n) {
				all = append(all, n)
			}
		}
		if len(all) == 0 {
			return nil, fmt.Errorf("module %s has no ReLU", m.Name)
		}
		return all, nil
	}
	return nil, fmt.Errorf("unknown erase location %v", loc)
}

// trailingReLUs walks back from a module's output through dropouts and
// concatenations to the ReLUs that end it.
func trailingReLUs(n *gorgonia.Node, members map[*gorgonia.Node]bool) ([]*gorgonia.Node, error) {
	if !members[n] {
		return nil, fmt.Errorf("node %v is outside the module", n)
	}
	switch {
	case graph.IsReLU(n):
		return []*gorgonia.Node{n}, nil
	case ops.IsDropout(n):
		return trailingReLUs(graph.Children(n)[0], members)
	case ops.IsConcat(n):
		var out []*gorgonia.Node
		for i, c := range graph.Children(n) {
			r, err := trailingReLUs(c, members)
			if err != nil {
				return nil, fmt.Errorf("branch %d: %w", i, err)
			}
			out = append(out, r...)
		}
		return out, nil
	}
	if a := graph.Activation(n); a != "" {
		return nil, fmt.Errorf("its output is %s, an activation the pass does not erase (it erases ReLUs: ops.ReLU, gorgonia.Rectify)", graph.Describe(n))
	}
	return nil, fmt.Errorf("its output is %s, not a ReLU (nor a dropout or concatenation of ReLUs)", graph.Describe(n))
}

// reLUsOutsideModules returns the ReLU nodes of g that no module holds, in
// graph order.
func reLUsOutsideModules(g *graph.Graph) []*gorgonia.Node {
	inModule := map[*gorgonia.Node]bool{}
	for _, m := range g.Modules() {
		for _, n := range m.Members {
			inModule[n] = true
		}
	}
	var out []*gorgonia.Node
	for _, x := range g.Expr().AllNodes() {
		if graph.IsReLU(x) && !inModule[x] {
			out = append(out, x)
		}
	}
	return out
}

// CountReLUs counts the ReLUs in g's forward graph (see graph.IsReLU: a
// gorgonia.Rectify counts once).
func CountReLUs(g *graph.Graph) int {
	n := 0
	for _, x := range g.Expr().AllNodes() {
		if graph.IsReLU(x) {
			n++
		}
	}
	return n
}
