package cuda

import (
	"fmt"
	"strings"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"github.com/eraserelu/eraserelu/train"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// lowerFn emits the instructions of one node, described by d. in are the
// buffers of its inputs; it returns the node's output buffer.
type lowerFn func(l *lowerer, n *gorgonia.Node, d ops.Desc, in []int) (int, error)

// lowerings maps every kind of op of graph/ops to its kernels: the lowering
// functions live in their family's file (conv.go, batchnorm.go, ...) beside
// the kernels' definitions and reference semantics. A lowering runs for a
// training step and for an inference step (l.inference()); the ops whose
// inference computes something else branch on it.
var lowerings = map[ops.Kind]lowerFn{
	ops.KindConv2D:           lowerConv,
	ops.KindConv2DDataGrad:   lowerConvData,
	ops.KindConv2DFilterGrad: lowerConvFilter,
	ops.KindConv2DBiasGrad:   lowerConvBias,

	ops.KindBatchNorm:          lowerBN,
	ops.KindBatchNormParamGrad: lowerBNParamGrad,
	ops.KindBatchNormInputGrad: lowerBNInputGrad,

	ops.KindReLU:           lowerReLU,
	ops.KindReLUGrad:       lowerReLUGrad,
	ops.KindAdd:            lowerAdd,
	ops.KindPReLU:          lowerPReLU,
	ops.KindPReLUInputGrad: lowerPReLUDx,
	ops.KindPReLUAlphaGrad: lowerPReLUDAlpha,

	ops.KindRow:         lowerRow,
	ops.KindFlatten:     lowerCopy,
	ops.KindFlattenGrad: lowerCopy,
	ops.KindConcat:      lowerConcat,
	ops.KindConcatSlice: lowerConcatSlice,

	ops.KindZeroPadShortcut:     lowerZeroPad,
	ops.KindZeroPadShortcutGrad: lowerZeroPadBwd,

	ops.KindGlobalAvgPool:     lowerGAP,
	ops.KindGlobalAvgPoolGrad: lowerGAPBwd,
	ops.KindMaxPool:           lowerPool(maxPoolFwd, false),
	ops.KindMaxPoolGrad:       lowerPool(maxPoolBwd, true),
	ops.KindAvgPool:           lowerPool(avgPoolFwd, false),
	ops.KindAvgPoolGrad:       lowerPool(avgPoolBwd, true),

	ops.KindLinear:           lowerLinear,
	ops.KindLinearDataGrad:   lowerLinearDataGrad,
	ops.KindLinearWeightGrad: lowerLinearWeightGrad,
	ops.KindLinearBiasGrad:   lowerLinearBiasGrad,

	ops.KindCrossEntropy:     lowerCE,
	ops.KindCrossEntropyGrad: lowerCEBwd,

	ops.KindDropout:             lowerDropout,
	ops.KindDropoutGrad:         lowerRandomBwd,
	ops.KindStochasticDepth:     lowerStochDepth,
	ops.KindStochasticDepthGrad: lowerRandomBwd,

	ops.KindLayerNorm:          lowerLN,
	ops.KindLayerNormInputGrad: lowerLNInputGrad,
	ops.KindLayerNormParamGrad: lowerLNParamGrad,
}

// pending lists the kinds that have no device kernels yet, with the reason
// (none at present); Lower fails on a graph that uses them. A kind in
// neither map fails TestEveryOpHasALowering.
var pending = map[ops.Kind]string{}

type lowerer struct {
	s     *Step
	g     *graph.Graph
	nodes map[*gorgonia.Node]int
	saved map[gorgonia.Op]int // forward op -> buffer its backward reads (BN statistics, softmax)
	// consumers of each needed node; fused: ReLU nodes computed by the
	// batch norm before them (bn_apply_relu), with their buffer.
	consumers map[*gorgonia.Node][]*gorgonia.Node
	fused     map[*gorgonia.Node]int
	state     map[*tensor.Dense]int
	// names of the buffers (graph names of state tensors)
	stateNames map[*tensor.Dense]string
	// random: forward random op -> its counter in the RNG buffer;
	// randomFwdInstr: -> its forward instruction
	random         map[gorgonia.Op]int
	randomFwdInstr map[gorgonia.Op]Instr
	// base is the training step an inference step is lowered onto (nil
	// when lowering a training step).
	base *Step
	// bf16 steps: halfOf maps a buffer to its bf16 copy; weights is the
	// packed bf16 copy of the parameters (-1 until a GEMM needs it).
	halfOf  map[int]int
	weights int
	// roots: the nodes the pins read (outputs, gradients), whose buffers
	// the host reads or the optimizer takes in fp32.
	roots map[*gorgonia.Node]bool
}

// inference reports whether the step being lowered is an inference step.
func (l *lowerer) inference() bool { return l.base != nil }

// forwardOf is the forward op a backward op reads saved state of.
func forwardOf(n *gorgonia.Node) (gorgonia.Op, error) {
	b, ok := n.Op().(ops.Backward)
	if !ok {
		return nil, fmt.Errorf("%v does not give its forward op", n.Op())
	}
	return b.Forward(), nil
}

func shapeOf(n *gorgonia.Node) []int {
	s := n.Shape()
	if len(s) == 0 {
		return []int{1}
	}
	return []int(s)
}

func elems(n *gorgonia.Node) int {
	p := 1
	for _, d := range shapeOf(n) {
		p *= d
	}
	return p
}

func (l *lowerer) out(n *gorgonia.Node) int {
	return l.s.buf(nodeName(n), elems(n), Activation)
}

func (l *lowerer) scratch(name string, elems int) int { return l.s.buf(name, elems, Scratch) }

// doubles is a scratch buffer of n float64 values (2n elements).
func (l *lowerer) doubles(name string, n int) int {
	id := l.s.buf(name, 2*n, Scratch)
	l.s.Bufs[id].Double = true
	return id
}

func nodeName(n *gorgonia.Node) string {
	if n.Op() != nil {
		return fmt.Sprintf("%s#%d", n.Op(), n.ID())
	}
	return n.Name()
}

// emit appends instruction in, a launch for node n.
func (l *lowerer) emit(in Instr, n *gorgonia.Node) {
	in.Node = nodeName(n)
	l.s.emit(in)
}

func (l *lowerer) gemm(g GemmArgs, alpha, beta float64, a, b, c int, n *gorgonia.Node) error {
	if err := g.Validate(l.s.Bufs[a].Elems, l.s.Bufs[b].Elems, l.s.Bufs[c].Elems); err != nil {
		return fmt.Errorf("%s: %w", nodeName(n), err)
	}
	if err := l.s.checkOperands(a, b, c); err != nil {
		return fmt.Errorf("%s: %w", nodeName(n), err)
	}
	l.emit(Instr{Kernel: "gemm", Ints: g.Ints(), Floats: []float64{alpha, beta}, Bufs: []int{a, b, c}, Writes: []int{c}}, n)
	return nil
}

// Lower turns the training machine of a compiled float32 program into a
// Step: the nodes the loss and the parameter gradients need, in the tape's
// (topological) order, then the SGD update of every parameter. prec BF16
// lowers the mixed-precision step (bf16.go); FP32 and TF32 the float32 one.
func Lower(p *graph.Program, sgd train.SGDOptions, prec Precision) (*Step, error) {
	return lower(p, sgd, Lowering{Precision: prec}, nil)
}

// LowerInference turns the inference machine of p into a Step over the
// buffers of base, the planned training step Lower made of the same
// program: the nodes the named outputs need, batch norm normalising with
// the running statistics (bn_infer, and no update of them), no backward
// pass and no optimizer. Its parameters, running statistics, constants,
// batch and metrics are base's buffers (Step.Shared); Plan packs its
// activations into base's arena. Run it on the executor of base, between
// training steps: it reads the parameters and statistics the last step
// left, and writes only the batch's metrics (and the loss and logits,
// readable until the next step).
func LowerInference(p *graph.Program, base *Step) (*Step, error) {
	if base == nil || base.Base != nil || base.NodeBufs == nil {
		return nil, fmt.Errorf("cuda: lower inference: the base must be a training step made by Lower")
	}
	if base.ArenaBytes == 0 {
		return nil, fmt.Errorf("cuda: lower inference: plan the training step first")
	}
	return lower(p, base.SGD, Lowering{Precision: base.Precision, DirectConv: base.DirectConv}, base)
}

func lower(p *graph.Program, sgd train.SGDOptions, low Lowering, base *Step) (*Step, error) {
	g := p.Graph()
	if g.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("cuda: only float32 graphs run on the device, this one is %v", g.Dtype())
	}
	s := &Step{States: map[string]int{}, SGD: sgd, Precision: low.Precision.lowered(), DirectConv: low.DirectConv, Loss: -1, Logits: -1, X: -1, Y: -1, Hyper: -1, RNG: -1}
	l := &lowerer{s: s, g: g, nodes: map[*gorgonia.Node]int{}, saved: map[gorgonia.Op]int{},
		state: map[*tensor.Dense]int{}, stateNames: map[*tensor.Dense]string{}, random: map[gorgonia.Op]int{}, randomFwdInstr: map[gorgonia.Op]Instr{},
		base: base, halfOf: map[int]int{}, weights: -1}
	if base != nil {
		s.Base, s.Shared = base, map[int]int{}
	}
	for _, b := range g.Buffers() {
		l.stateNames[b.Value] = b.Name
	}

	// Pins: which node is which output or gradient.
	targets := map[*tensor.Dense]*gorgonia.Node{}
	for _, n := range g.Expr().AllNodes() {
		if d := ops.Describe(n.Op()); d.Kind == ops.KindPin {
			targets[d.Target] = graph.Children(n)[0]
		}
	}
	var roots []*gorgonia.Node
	gradNode := map[*graph.Param]*gorgonia.Node{}
	for _, prm := range g.Params() {
		if base != nil {
			break // inference: no gradients
		}
		t, err := p.Grad(prm)
		if err != nil {
			return nil, err
		}
		n := targets[t]
		if n == nil {
			return nil, fmt.Errorf("cuda: no pinned gradient for %s", prm.Name)
		}
		gradNode[prm] = n
		roots = append(roots, n)
	}
	outNode := map[string]*gorgonia.Node{}
	for _, name := range g.OutputNames() {
		t, err := p.Output(name)
		if err != nil {
			return nil, err
		}
		n := targets[t]
		if n == nil {
			return nil, fmt.Errorf("cuda: no pinned output %q", name)
		}
		outNode[name] = n
		roots = append(roots, n)
	}
	l.roots = map[*gorgonia.Node]bool{}
	for _, n := range roots {
		l.roots[n] = true
	}
	needed := map[*gorgonia.Node]bool{}
	stack := append([]*gorgonia.Node(nil), roots...)
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if needed[n] {
			continue
		}
		needed[n] = true
		stack = append(stack, graph.Children(n)...)
	}

	l.consumers = map[*gorgonia.Node][]*gorgonia.Node{}
	l.fused = map[*gorgonia.Node]int{}
	for n := range needed {
		for _, k := range graph.Children(n) {
			l.consumers[k] = append(l.consumers[k], n)
		}
	}
	for _, prm := range g.Params() {
		if base != nil {
			if needed[prm.Node] {
				id, err := l.share(prm.Node)
				if err != nil {
					return nil, err
				}
				l.nodes[prm.Node] = id
			}
			continue
		}
		id := s.buf(prm.Name, elems(prm.Node), Param)
		l.nodes[prm.Node] = id
		s.Params = append(s.Params, ParamSlot{Name: prm.Name, Param: id, NoDecay: prm.NoDecay})
	}
	for _, name := range g.InputNames() {
		n, _ := g.Input(name)
		if !needed[n] {
			continue
		}
		var id int
		if base != nil {
			var err error
			if id, err = l.share(n); err != nil {
				return nil, err
			}
		} else {
			id = s.buf("input/"+name, elems(n), Input)
		}
		switch {
		case n.Dtype() == tensor.Int:
			s.Bufs[id].Int = true
		case n.Dtype() != tensor.Float32:
			return nil, fmt.Errorf("cuda: input %q has dtype %v", name, n.Dtype())
		}
		l.nodes[n] = id
		switch name {
		case "x":
			s.X = id
		case "y":
			s.Y = id
		}
	}
	if base != nil {
		s.Metrics = l.shareBuf(base.Metrics)
	} else {
		s.Metrics = s.buf("metrics", metricsLen, Metrics)
		s.Hyper = s.buf("hyper", hyperLen, Hyper)
	}

	for _, n := range g.Expr().AllNodes() {
		if !needed[n] {
			continue
		}
		if _, done := l.nodes[n]; done {
			continue
		}
		if n.IsVar() {
			return nil, fmt.Errorf("cuda: variable %v is neither a parameter nor an input", n)
		}
		if len(graph.Children(n)) == 0 && base != nil { // a constant of the training step
			id, err := l.share(n)
			if err != nil {
				return nil, err
			}
			l.nodes[n] = id
			continue
		}
		if len(graph.Children(n)) == 0 { // a constant
			v := graph.ScalarOf(n.Value())
			if n.Value() == nil || elems(n) != 1 {
				return nil, fmt.Errorf("cuda: unsupported constant %v", n)
			}
			id := s.buf("const/"+n.Name(), 1, Const)
			s.Bufs[id].Init = []float32{float32(v)}
			l.nodes[n] = id
			continue
		}
		d := ops.Describe(n.Op())
		if d.Kind == ops.KindPin {
			continue // pins are not needed: roots are their inputs
		}
		if id, ok := l.fused[n]; ok {
			l.nodes[n] = id
			continue
		}
		fn, ok := lowerings[d.Kind]
		if !ok {
			if why, ok := pending[d.Kind]; ok {
				return nil, fmt.Errorf("cuda: op %v (%v) has no device kernels yet: %s", d.Kind, n.Op(), why)
			}
			if d.Kind == ops.KindUnknown {
				return nil, fmt.Errorf("cuda: no lowering for op %v: it is not an op of graph/ops (it does not describe itself)", n.Op())
			}
			return nil, fmt.Errorf("cuda: no lowering for op %v of kind %v", n.Op(), d.Kind)
		}
		var in []int
		for _, k := range graph.Children(n) {
			id, ok := l.nodes[k]
			if !ok {
				return nil, fmt.Errorf("cuda: input %v of %v not lowered", k, n)
			}
			in = append(in, id)
		}
		out, err := fn(l, n, d, in)
		if err != nil {
			return nil, fmt.Errorf("cuda: lower %v: %w", n, err)
		}
		l.nodes[n] = out
	}

	if base != nil {
		return l.finishInference(outNode)
	}
	for i := range s.Params {
		prm := g.Params()[i]
		id := l.nodes[gradNode[prm]]
		b := s.Bufs[id]
		if b.Kind != Activation {
			return nil, fmt.Errorf("cuda: gradient of %s is a %v buffer", prm.Name, b.Kind)
		}
		b.Kind = Grad
		s.Params[i].Grad = id
		s.Params[i].Vel = s.buf("velocity/"+prm.Name, b.Elems, Velocity)
	}
	if n, ok := outNode["loss"]; ok {
		s.Loss = l.nodes[n]
		s.Bufs[s.Loss].Kind = Metrics
	}
	if n, ok := outNode["logits"]; ok {
		s.Logits = l.nodes[n]
		s.Bufs[s.Logits].Kind = Metrics
		sh := shapeOf(n)
		s.Batch, s.Classes = sh[0], sh[len(sh)-1]
	}
	s.NodeBufs = map[any]int{}
	for n, id := range l.nodes {
		s.NodeBufs[n] = id
	}
	l.emitRNGAdvance()
	s.OptStart = len(s.Instrs)
	l.emitSGD()
	return s, nil
}

// share adds to an inference step the training step's buffer of node n.
func (l *lowerer) share(n *gorgonia.Node) (int, error) {
	bid, ok := l.base.NodeBufs[n]
	if !ok || !l.base.Bufs[bid].Kind.Persistent() {
		return 0, fmt.Errorf("cuda: lower inference: %v has no persistent buffer in the training step", n)
	}
	return l.shareBuf(bid), nil
}

// shareBuf adds base buffer bid to the inference step (once).
func (l *lowerer) shareBuf(bid int) int {
	for id, b := range l.s.Shared {
		if b == bid {
			return id
		}
	}
	ob := l.base.Bufs[bid]
	id := l.s.buf(ob.Name, ob.Elems, ob.Kind)
	l.s.Bufs[id].Int = ob.Int
	l.s.Shared[id] = bid
	return id
}

// finishInference names the inference step's outputs: the loss and logits
// stay activations (Plan keeps them live to the end of the step).
func (l *lowerer) finishInference(outNode map[string]*gorgonia.Node) (*Step, error) {
	s := l.s
	if n, ok := outNode["loss"]; ok {
		s.Loss = l.nodes[n]
	}
	if n, ok := outNode["logits"]; ok {
		s.Logits = l.nodes[n]
		sh := shapeOf(n)
		s.Batch, s.Classes = sh[0], sh[len(sh)-1]
	}
	s.NodeBufs = map[any]int{}
	for n, id := range l.nodes {
		s.NodeBufs[n] = id
	}
	s.OptStart = len(s.Instrs)
	return s, nil
}

// Describe is a one-line summary of the step.
func (s *Step) Describe() string {
	counts := map[string]int{}
	for _, in := range s.Instrs {
		counts[in.Kernel]++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d buffers, %d launches, arena %.1f MiB:", len(s.Bufs), len(s.Instrs), float64(s.ArenaBytes)/(1<<20))
	for _, k := range sortedKeys(counts) {
		fmt.Fprintf(&b, " %s=%d", k, counts[k])
	}
	return b.String()
}
