package cuda

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// lowerFn emits the instructions of one node. in are the buffers of its
// inputs; it returns the node's output buffer.
type lowerFn func(l *lowerer, n *gorgonia.Node, in []int) (int, error)

// lowerers maps every op type of graph/ops (by Go type name) to its kernels.
var lowerers = map[string]lowerFn{
	"Conv2DOp":            lowerConv,
	"conv2DDataGradOp":    lowerConvData,
	"conv2DFilterGradOp":  lowerConvFilter,
	"conv2DBiasGradOp":    lowerConvBias,
	"BatchNormOp":         lowerBN,
	"bnParamGradOp":       lowerBNParamGrad,
	"bnInputGradOp":       lowerBNInputGrad,
	"normRowOp":           lowerRow,
	"ReLUOp":              unary("relu_fwd"),
	"reluBackwardOp":      binary("relu_bwd"),
	"AddOp":               lowerAdd,
	"PReLUOp":             lowerPReLU,
	"preluInputGradOp":    lowerPReLUDx,
	"preluAlphaGradOp":    lowerPReLUDAlpha,
	"ZeroPadShortcutOp":   lowerZeroPad,
	"zeroPadBackwardOp":   lowerZeroPadBwd,
	"GlobalAvgPoolOp":     lowerGAP,
	"globalAvgPoolGradOp": lowerGAPBwd,
	"MaxPool2DOp":         lowerPool("maxpool_fwd", false),
	"maxPoolGradOp":       lowerPool("maxpool_bwd", true),
	"AvgPool2DOp":         lowerPool("avgpool_fwd", false),
	"avgPoolGradOp":       lowerPool("avgpool_bwd", true),
	"FlattenOp":           lowerCopy,
	"flattenGradOp":       lowerCopy,
	"LinearOp":            lowerLinear,
	"linearGradOp":        lowerLinearGrad,
	"CrossEntropyOp":      lowerCE,
	"ceBackwardOp":        lowerCEBwd,
	"ConcatOp":            lowerConcat,
	"concatSliceOp":       lowerConcatSlice,

	// random ops (random.go) and layer norm (layernorm.go)
	"DropoutOp":            lowerDropout,
	"dropoutBackwardOp":    lowerDropoutBwd,
	"StochasticDepthOp":    lowerStochDepth,
	"stochDepthBackwardOp": lowerStochDepthBwd,
	"LayerNormOp":          lowerLN,
	"lnInputGradOp":        lowerLNInputGrad,
	"lnParamGradOp":        lowerLNParamGrad,
}

// inferLowerers replace lowerers in an inference step for the ops whose
// inference mode computes something else (batch norm's is in lowerBN).
var inferLowerers = map[string]lowerFn{
	"DropoutOp":         lowerDropoutInfer,
	"StochasticDepthOp": lowerStochDepthInfer,
}

// pending lists the op types that have no device kernels yet, with the
// reason (none at present); Lower fails on a graph that uses them. An op
// type in neither map fails TestEveryOpHasALowering.
var pending = map[string]string{}

// OpTypeName is the key of an op in lowerers.
func OpTypeName(op gorgonia.Op) string {
	t := reflect.TypeOf(op)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

type lowerer struct {
	s     *Step
	g     *graph.Graph
	nodes map[*gorgonia.Node]int
	saved map[uintptr]int // forward op -> buffer its backward reads (BN statistics, softmax)
	// consumers of each needed node; fused: ReLU nodes computed by the
	// batch norm before them (bn_apply_relu), with their buffer.
	consumers map[*gorgonia.Node][]*gorgonia.Node
	fused     map[*gorgonia.Node]int
	aux       map[uintptr][]int
	state     map[*tensor.Dense]int
	// names of the buffers (graph names of state tensors)
	stateNames map[*tensor.Dense]string
	// random: forward random op -> its counter in the RNG buffer;
	// randomFwd: -> its forward instruction
	random    map[uintptr]int
	randomFwd map[uintptr]Instr
	// base is the training step an inference step is lowered onto (nil
	// when lowering a training step).
	base *Step
}

// field reads an unexported field of an op (or of what it points to).
func field(op any, name string) reflect.Value {
	v := reflect.ValueOf(op)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		v = v.Elem()
	}
	f := v.FieldByName(name)
	if !f.IsValid() {
		panic(fmt.Sprintf("cuda: %T has no field %q (graph/ops changed: update cuda/lower.go)", op, name))
	}
	return f
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

func (l *lowerer) emit(kernel string, ints []int, floats []float64, bufs []int, writes []int, n *gorgonia.Node) {
	l.s.emit(Instr{Kernel: kernel, Ints: ints, Floats: floats, Bufs: bufs, Writes: writes, Node: nodeName(n)})
}

func (l *lowerer) gemm(g GemmArgs, alpha, beta float64, a, b, c int, n *gorgonia.Node) error {
	if err := g.Validate(l.s.Bufs[a].Elems, l.s.Bufs[b].Elems, l.s.Bufs[c].Elems); err != nil {
		return fmt.Errorf("%s: %w", nodeName(n), err)
	}
	l.emit("gemm", g.Ints(), []float64{alpha, beta}, []int{a, b, c}, []int{c}, n)
	return nil
}

// Lower turns the training machine of a compiled float32 program into a
// Step: the nodes the loss and the parameter gradients need, in the tape's
// (topological) order, then the SGD update of every parameter.
func Lower(p *graph.Program, sgd SGDConfig) (*Step, error) { return lower(p, sgd, nil) }

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
	return lower(p, base.SGD, base)
}

func lower(p *graph.Program, sgd SGDConfig, base *Step) (*Step, error) {
	g := p.Graph()
	if g.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("cuda: only float32 graphs run on the device, this one is %v", g.Dtype())
	}
	s := &Step{States: map[string]int{}, SGD: sgd, Loss: -1, Logits: -1, X: -1, Y: -1, Hyper: -1, RNG: -1}
	l := &lowerer{s: s, g: g, nodes: map[*gorgonia.Node]int{}, saved: map[uintptr]int{}, aux: map[uintptr][]int{},
		state: map[*tensor.Dense]int{}, stateNames: map[*tensor.Dense]string{}, random: map[uintptr]int{}, randomFwd: map[uintptr]Instr{},
		base: base}
	if base != nil {
		s.Base, s.Shared = base, map[int]int{}
	}
	for _, b := range g.Buffers() {
		l.stateNames[b.Value] = b.Name
	}

	// Pins: which node is which output or gradient.
	targets := map[uintptr]*gorgonia.Node{}
	for _, n := range g.Expr().AllNodes() {
		if _, ok := n.Op().(*ops.PinOp); ok {
			targets[field(n.Op(), "target").Pointer()] = graph.Children(n)[0]
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
		n := targets[reflect.ValueOf(t).Pointer()]
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
		n := targets[reflect.ValueOf(t).Pointer()]
		if n == nil {
			return nil, fmt.Errorf("cuda: no pinned output %q", name)
		}
		outNode[name] = n
		roots = append(roots, n)
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
		if _, ok := n.Op().(*ops.PinOp); ok {
			continue // pins are not needed: roots are their inputs
		}
		if id, ok := l.fused[n]; ok {
			l.nodes[n] = id
			continue
		}
		name := OpTypeName(n.Op())
		fn, ok := lowerers[name]
		if f, inf := inferLowerers[name]; inf && base != nil {
			fn = f
		}
		if !ok {
			if why, ok := pending[name]; ok {
				return nil, fmt.Errorf("cuda: op %s (%v) has no device kernels yet: %s", name, n.Op(), why)
			}
			return nil, fmt.Errorf("cuda: no lowering for op type %s (%v)", name, n.Op())
		}
		var in []int
		for _, k := range graph.Children(n) {
			id, ok := l.nodes[k]
			if !ok {
				return nil, fmt.Errorf("cuda: input %v of %v not lowered", k, n)
			}
			in = append(in, id)
		}
		out, err := fn(l, n, in)
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

// emitSGD updates runs of consecutive parameters of one decay class with
// one launch each: Plan packs parameters, gradients and velocities in slot
// order without gaps, so a run is contiguous in all three regions.
func (l *lowerer) emitSGD() {
	s := l.s
	o := s.SGD
	for i := 0; i < len(s.Params); {
		j, n := i, 0
		for j < len(s.Params) && s.Params[j].NoDecay == s.Params[i].NoDecay {
			n += s.Bufs[s.Params[j].Param].Elems
			j++
		}
		decay := 0
		if !s.Params[i].NoDecay && o.WeightDecay != 0 {
			decay = 1
		}
		first := s.Params[i]
		bufs := []int{first.Param, first.Grad, first.Vel, s.Hyper}
		s.emit(Instr{Kernel: "sgd", Ints: []int{n, b2i(o.Nesterov), decay},
			Floats: []float64{o.Momentum, 1 - o.Dampening, o.WeightDecay}, Bufs: bufs, Writes: []int{first.Param, first.Vel},
			Node: fmt.Sprintf("sgd %s..%s", first.Name, s.Params[j-1].Name)})
		i = j
	}
}

// SGDRuns lists, for each sgd instruction, the slots it covers (for Plan
// and tests).
func (s *Step) SGDRuns() [][]int {
	var runs [][]int
	for i := 0; i < len(s.Params); {
		j := i
		var r []int
		for j < len(s.Params) && s.Params[j].NoDecay == s.Params[i].NoDecay {
			r = append(r, j)
			j++
		}
		runs = append(runs, r)
		i = j
	}
	return runs
}

// ---- lowerers ----------------------------------------------------------------

func unary(kernel string) lowerFn {
	return func(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
		y := l.out(n)
		l.emit(kernel, []int{elems(n)}, nil, []int{in[0], y}, []int{y}, n)
		return y, nil
	}
}

func binary(kernel string) lowerFn {
	return func(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
		y := l.out(n)
		l.emit(kernel, []int{elems(n)}, nil, []int{in[0], in[1], y}, []int{y}, n)
		return y, nil
	}
}

// AddOp: with add_relu when a ReLU alone reads the sum (the residual merge).
func lowerAdd(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	y := l.out(n)
	kernel := "add"
	if relu := l.fusableReLU(n); relu != nil {
		kernel = "add_relu"
		l.fused[relu] = y
		l.s.Bufs[y].Name += "+" + nodeName(relu)
	}
	l.emit(kernel, []int{elems(n)}, nil, []int{in[0], in[1], y}, []int{y}, n)
	return y, nil
}

func lowerCopy(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	y := l.out(n)
	e := elems(n)
	l.emit("copy2d", []int{1, e, 0, 0, 0, 0}, nil, []int{in[0], y}, []int{y}, n)
	return y, nil
}

// nci splits a shape into N, C and the product of the rest.
func nci(s []int) (n, c, inner int) {
	inner = 1
	for _, d := range s[2:] {
		inner *= d
	}
	return s[0], s[1], inner
}

type conv struct {
	N, C, H, W, F, KH, KW, SH, SW, PH, PW, G, OH, OW int
}

func (c conv) kg() int      { return c.C / c.G * c.KH * c.KW }
func (c conv) fg() int      { return c.F / c.G }
func (c conv) p() int       { return c.OH * c.OW }
func (c conv) colRows() int { return c.C * c.KH * c.KW }
func (c conv) pointwise() bool {
	return c.KH == 1 && c.KW == 1 && c.SH == 1 && c.SW == 1 && c.PH == 0 && c.PW == 0
}
func (c conv) im2colInts() []int {
	return []int{c.N, c.C, c.H, c.W, c.KH, c.KW, c.SH, c.SW, c.PH, c.PW, c.OH, c.OW}
}

func convOf(xs, ws []int, p ops.ConvParams) conv {
	c := conv{N: xs[0], C: xs[1], H: xs[2], W: xs[3], F: ws[0], KH: ws[2], KW: ws[3],
		SH: max(p.StrideH, 1), SW: max(p.StrideW, 1), PH: p.PadH, PW: p.PadW, G: max(p.Groups, 1)}
	c.OH = ops.ConvOutputSize(c.H, c.KH, c.SH, c.PH)
	c.OW = ops.ConvOutputSize(c.W, c.KW, c.SW, c.PW)
	return c
}

func convParamsOf(op gorgonia.Op) ops.ConvParams {
	f := field(op, "p")
	return ops.ConvParams{StrideH: int(f.FieldByName("StrideH").Int()), StrideW: int(f.FieldByName("StrideW").Int()),
		PadH: int(f.FieldByName("PadH").Int()), PadW: int(f.FieldByName("PadW").Int()), Groups: int(f.FieldByName("Groups").Int())}
}

// columns returns the im2col buffer of x for c (x itself when pointwise).
func (l *lowerer) columns(c conv, x int, n *gorgonia.Node) int {
	if c.pointwise() {
		return x
	}
	col := l.scratch(nodeName(n)+"/col", c.N*c.colRows()*c.p())
	l.emit("im2col", c.im2colInts(), nil, []int{x, col}, []int{col}, n)
	return col
}

func lowerConv(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	op := n.Op().(*ops.Conv2DOp)
	ch := graph.Children(n)
	c := convOf(shapeOf(ch[0]), shapeOf(ch[1]), op.Params())
	y := l.out(n)
	col := l.columns(c, in[0], n)
	for gi := 0; gi < c.G; gi++ {
		ga := GemmArgs{M: c.fg(), N: c.p(), K: c.kg(), LDA: c.kg(), LDB: c.p(), LDC: c.p(), Batch: c.N,
			StrideA: 0, StrideB: c.colRows() * c.p(), StrideC: c.F * c.p(),
			AOff: gi * c.fg() * c.kg(), BOff: gi * c.kg() * c.p(), COff: gi * c.fg() * c.p()}
		if err := l.gemm(ga, 1, 0, in[1], col, y, n); err != nil {
			return 0, err
		}
	}
	if op.HasBias() {
		l.emit("bias_nchw", []int{c.N, c.F, c.p()}, nil, []int{in[2], y}, []int{y}, n)
	}
	return y, nil
}

// conv2DDataGradOp(w, dy) -> dx: dcol = Wᵀ·dy per image and group, col2im.
func lowerConvData(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	ch := graph.Children(n)
	c := convOf(shapeOf(n), shapeOf(ch[0]), convParamsOf(n.Op()))
	dx := l.out(n)
	dcol := dx
	if !c.pointwise() {
		dcol = l.scratch(nodeName(n)+"/dcol", c.N*c.colRows()*c.p())
	}
	for gi := 0; gi < c.G; gi++ {
		ga := GemmArgs{TransA: true, M: c.kg(), N: c.p(), K: c.fg(), LDA: c.kg(), LDB: c.p(), LDC: c.p(), Batch: c.N,
			StrideA: 0, StrideB: c.F * c.p(), StrideC: c.colRows() * c.p(),
			AOff: gi * c.fg() * c.kg(), BOff: gi * c.fg() * c.p(), COff: gi * c.kg() * c.p()}
		if err := l.gemm(ga, 1, 0, in[0], in[1], dcol, n); err != nil {
			return 0, err
		}
	}
	if !c.pointwise() {
		l.emit("col2im", c.im2colInts(), nil, []int{dcol, dx}, []int{dx}, n)
	}
	return dx, nil
}

// conv2DFilterGradOp(x, dy) -> dw: per image dy·colᵀ into partial sums, then their sum.
func lowerConvFilter(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	ch := graph.Children(n)
	c := convOf(shapeOf(ch[0]), shapeOf(n), convParamsOf(n.Op()))
	dw := l.out(n)
	col := l.columns(c, in[0], n)
	part := l.scratch(nodeName(n)+"/partial", c.N*c.F*c.kg())
	for gi := 0; gi < c.G; gi++ {
		ga := GemmArgs{TransB: true, M: c.fg(), N: c.kg(), K: c.p(), LDA: c.p(), LDB: c.p(), LDC: c.kg(), Batch: c.N,
			StrideA: c.F * c.p(), StrideB: c.colRows() * c.p(), StrideC: c.F * c.kg(),
			AOff: gi * c.fg() * c.p(), BOff: gi * c.kg() * c.p(), COff: gi * c.fg() * c.kg()}
		if err := l.gemm(ga, 1, 0, in[1], col, part, n); err != nil {
			return 0, err
		}
	}
	l.emit("sum_rows", []int{c.N, c.F * c.kg()}, nil, []int{part, dw}, []int{dw}, n)
	return dw, nil
}

func lowerConvBias(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	nn, c, inner := nci(shapeOf(graph.Children(n)[0]))
	db := l.out(n)
	l.emit("channel_sum", []int{nn, c, inner}, nil, []int{in[0], db}, []int{db}, n)
	return db, nil
}

func (l *lowerer) stateBuf(t *tensor.Dense) (int, error) {
	if id, ok := l.state[t]; ok {
		return id, nil
	}
	name := l.stateNames[t]
	if name == "" {
		name = fmt.Sprintf("state#%d", len(l.state))
	}
	var id int
	if l.base != nil {
		bid, ok := l.base.States[name]
		if !ok {
			return 0, fmt.Errorf("running statistic %s is not in the training step", name)
		}
		id = l.shareBuf(bid)
	} else {
		id = l.s.buf(name, t.Size(), State)
	}
	l.state[t] = id
	l.s.States[name] = id
	return id, nil
}

// lowerBN: in a training step the batch statistics (and the running
// statistics' update), saved for the backward pass; in an inference step
// the running statistics, as (mean, 1/sqrt(var+eps)) for the same apply.
func lowerBN(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	op := n.Op().(*ops.BatchNormOp)
	cfg := op.Config()
	nn, c, inner := nci(shapeOf(n))
	rm, err := l.stateBuf(cfg.RunningMean)
	if err != nil {
		return 0, err
	}
	rv, err := l.stateBuf(cfg.RunningVar)
	if err != nil {
		return 0, err
	}
	saved := l.s.buf(nodeName(n)+"/saved", 2*c, Activation)
	if l.base != nil {
		l.emit("bn_infer", []int{c}, []float64{cfg.Eps}, []int{rm, rv, saved}, []int{saved}, n)
	} else {
		l.saved[reflect.ValueOf(op).Pointer()] = saved
		chunk := ChannelChunk(inner)
		parts := ChannelParts(nn, chunk)
		part := l.doubles(nodeName(n)+"/partial-stats", 2*c*parts)
		l.emit("bn_stats_part", []int{nn, c, inner, chunk}, nil, []int{in[0], part}, []int{part}, n)
		l.emit("bn_stats_final", []int{nn, c, inner, parts}, []float64{cfg.Momentum, cfg.Eps}, []int{in[0], part, saved, rm, rv}, []int{saved, rm, rv}, n)
	}
	kernel := "bn_apply"
	y := l.out(n)
	if relu := l.fusableReLU(n); relu != nil {
		kernel = "bn_apply_relu"
		l.fused[relu] = y
		l.s.Bufs[y].Name += "+" + nodeName(relu)
	}
	l.emit(kernel, []int{nn, c, inner}, nil, []int{in[0], in[1], in[2], saved, y}, []int{y}, n)
	return y, nil
}

// fusableReLU returns the ReLU that is the only reader of n's output (a
// batch norm's backward ops take its output only to be ordered after it),
// and that is not itself a root (a pinned output or gradient).
func (l *lowerer) fusableReLU(n *gorgonia.Node) *gorgonia.Node {
	var relu *gorgonia.Node
	for _, c := range l.consumers[n] {
		switch c.Op().(type) {
		case *ops.ReLUOp:
			if relu != nil {
				return nil
			}
			relu = c
		case *ops.PinOp:
			return nil
		default:
			if OpTypeName(c.Op()) != "bnParamGradOp" {
				return nil
			}
		}
	}
	if relu == nil {
		return nil
	}
	for _, c := range l.consumers[relu] {
		if _, ok := c.Op().(*ops.PinOp); ok {
			return nil
		}
	}
	return relu
}

func (l *lowerer) savedOf(op gorgonia.Op) (int, error) {
	id, ok := l.saved[field(op, "fwd").Pointer()]
	if !ok {
		return 0, fmt.Errorf("backward op %v before its forward", op)
	}
	return id, nil
}

// bnParamGradOp(x, y, dy) -> (2, C)
func lowerBNParamGrad(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	saved, err := l.savedOf(n.Op())
	if err != nil {
		return 0, err
	}
	nn, c, inner := nci(shapeOf(graph.Children(n)[0]))
	red := l.out(n)
	chunk := ChannelChunk(inner)
	parts := ChannelParts(nn, chunk)
	part := l.doubles(nodeName(n)+"/partial-sums", 2*c*parts)
	l.emit("bn_param_part", []int{nn, c, inner, chunk}, nil, []int{in[0], in[2], saved, part}, []int{part}, n)
	l.emit("bn_param_final", []int{c, parts}, nil, []int{saved, part, red}, []int{red}, n)
	return red, nil
}

// bnInputGradOp(x, gamma, dy, red) -> dx
func lowerBNInputGrad(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	saved, err := l.savedOf(n.Op())
	if err != nil {
		return 0, err
	}
	nn, c, inner := nci(shapeOf(n))
	dx := l.out(n)
	l.emit("bn_input_grad", []int{nn, c, inner, 1}, nil, []int{in[0], in[1], in[2], in[3], saved, dx}, []int{dx}, n)
	return dx, nil
}

func lowerRow(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	row := int(field(n.Op(), "row").Int())
	c := elems(n)
	y := l.out(n)
	l.emit("copy2d", []int{1, c, 0, row * c, 0, 0}, nil, []int{in[0], y}, []int{y}, n)
	return y, nil
}

func lowerPReLU(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	nn, c, inner := nci(shapeOf(n))
	y := l.out(n)
	l.emit("prelu_fwd", []int{nn, c, inner}, nil, []int{in[0], in[1], y}, []int{y}, n)
	return y, nil
}

// preluInputGradOp(x, alpha, dy)
func lowerPReLUDx(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	nn, c, inner := nci(shapeOf(n))
	dx := l.out(n)
	l.emit("prelu_dx", []int{nn, c, inner}, nil, []int{in[0], in[1], in[2], dx}, []int{dx}, n)
	return dx, nil
}

// preluAlphaGradOp(x, dy)
func lowerPReLUDAlpha(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	nn, c, inner := nci(shapeOf(graph.Children(n)[0]))
	da := l.out(n)
	l.emit("prelu_dalpha", []int{nn, c, inner}, nil, []int{in[0], in[1], da}, []int{da}, n)
	return da, nil
}

func zeroPadInts(fwd gorgonia.Op, xs, ys []int) []int {
	return []int{xs[0], xs[1], ys[1], int(field(fwd, "outC").Int()-field(fwd, "c").Int()) / 2,
		xs[2], xs[3], ys[2], ys[3], int(field(fwd, "stride").Int())}
}

func lowerZeroPad(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	y := l.out(n)
	l.emit("zeropad_fwd", zeroPadInts(n.Op(), shapeOf(graph.Children(n)[0]), shapeOf(n)), nil, []int{in[0], y}, []int{y}, n)
	return y, nil
}

// zeroPadBackwardOp(dy) -> dx
func lowerZeroPadBwd(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	fv := field(n.Op(), "fwd") // *ZeroPadShortcutOp, read through reflection
	ints := []int{shapeOf(n)[0], int(fv.Elem().FieldByName("c").Int()), shapeOf(graph.Children(n)[0])[1],
		int(fv.Elem().FieldByName("outC").Int()-fv.Elem().FieldByName("c").Int()) / 2,
		shapeOf(n)[2], shapeOf(n)[3], shapeOf(graph.Children(n)[0])[2], shapeOf(graph.Children(n)[0])[3],
		int(fv.Elem().FieldByName("stride").Int())}
	dx := l.out(n)
	l.emit("zeropad_bwd", ints, nil, []int{in[0], dx}, []int{dx}, n)
	return dx, nil
}

func lowerGAP(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	nn, c, inner := nci(shapeOf(graph.Children(n)[0]))
	y := l.out(n)
	l.emit("gap_fwd", []int{nn * c, inner}, nil, []int{in[0], y}, []int{y}, n)
	return y, nil
}

func lowerGAPBwd(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	nn, c, inner := nci(shapeOf(n))
	dx := l.out(n)
	l.emit("gap_bwd", []int{nn * c, inner}, nil, []int{in[0], dx}, []int{dx}, n)
	return dx, nil
}

type poolParams interface {
	Kernel() int
	Stride() int
	Pad() int
}

func lowerPool(kernel string, backward bool) lowerFn {
	return func(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
		pp, ok := n.Op().(poolParams)
		if !ok {
			return 0, fmt.Errorf("%T has no pooling parameters", n.Op())
		}
		xs, ys := shapeOf(graph.Children(n)[0]), shapeOf(n)
		if backward {
			xs, ys = shapeOf(n), shapeOf(graph.Children(n)[len(in)-1])
		}
		ints := []int{xs[0] * xs[1], xs[2], xs[3], ys[2], ys[3], pp.Kernel(), pp.Stride(), pp.Pad()}
		y := l.out(n)
		l.emit(kernel, ints, nil, append(append([]int(nil), in...), y), []int{y}, n)
		return y, nil
	}
}

// LinearOp(x, w[, b]): y = b (rows), y += x·wᵀ, the CPU's order.
func lowerLinear(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	op := n.Op().(*ops.LinearOp)
	ys := shapeOf(n)
	xs := shapeOf(graph.Children(n)[0])
	rows, outN, inN := ys[0], ys[1], xs[1]
	y := l.out(n)
	beta := 0.0
	if op.HasBias() {
		l.emit("fill", []int{rows * outN}, []float64{0}, []int{y}, []int{y}, n)
		l.emit("bias_rows", []int{rows, outN}, nil, []int{in[2], y}, []int{y}, n)
		beta = 1
	}
	ga := GemmArgs{TransB: true, M: rows, N: outN, K: inN, LDA: inN, LDB: inN, LDC: outN, Batch: 1}
	if err := l.gemm(ga, 1, beta, in[0], in[1], y, n); err != nil {
		return 0, err
	}
	return y, nil
}

func lowerLinearGrad(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	out := l.out(n)
	switch kind := fmt.Sprint(n.Op()); kind {
	case "LinearDataGrad": // (w, dy) -> dx (N,In) = dy (N,Out) · w (Out,In)
		ws, dys := shapeOf(graph.Children(n)[0]), shapeOf(graph.Children(n)[1])
		ga := GemmArgs{M: dys[0], N: ws[1], K: ws[0], LDA: ws[0], LDB: ws[1], LDC: ws[1], Batch: 1}
		return out, l.gemm(ga, 1, 0, in[1], in[0], out, n)
	case "LinearWeightGrad": // (x, dy) -> dw (Out,In) = dyᵀ · x
		xs, dys := shapeOf(graph.Children(n)[0]), shapeOf(graph.Children(n)[1])
		ga := GemmArgs{TransA: true, M: dys[1], N: xs[1], K: xs[0], LDA: dys[1], LDB: xs[1], LDC: xs[1], Batch: 1}
		return out, l.gemm(ga, 1, 0, in[1], in[0], out, n)
	case "LinearBiasGrad": // (dy) -> column sums
		dys := shapeOf(graph.Children(n)[0])
		l.emit("sum_rows", []int{dys[0], dys[1]}, nil, []int{in[0], out}, []int{out}, n)
		return out, nil
	default:
		return 0, fmt.Errorf("unknown linear gradient %q", kind)
	}
}

// CrossEntropyOp(logits, labels) -> mean loss; metrics.
func lowerCE(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	zs := shapeOf(graph.Children(n)[0])
	rows, k := zs[0], zs[1]
	p := l.s.buf(nodeName(n)+"/softmax", rows*k, Activation)
	rl := l.s.buf(nodeName(n)+"/rowloss", rows, Activation)
	rk := l.s.buf(nodeName(n)+"/rank", rows, Activation)
	l.saved[reflect.ValueOf(n.Op()).Pointer()] = p
	loss := l.out(n)
	l.emit("ce_fwd", []int{rows, k}, nil, []int{in[0], in[1], p, rl, rk}, []int{p, rl, rk}, n)
	l.emit("ce_reduce", []int{rows}, nil, []int{in[1], rl, rk, l.s.Metrics, loss}, []int{l.s.Metrics, loss}, n)
	return loss, nil
}

// ceBackwardOp(logits, labels, loss, dloss) -> dlogits
func lowerCEBwd(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	p, err := l.savedOf(n.Op())
	if err != nil {
		return 0, err
	}
	zs := shapeOf(n)
	dz := l.out(n)
	l.emit("ce_bwd", []int{zs[0], zs[1]}, nil, []int{p, in[1], in[3], l.s.Metrics, dz}, []int{dz}, n)
	return dz, nil
}

func lowerConcat(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	ys := shapeOf(n)
	nn, ctot, inner := nci(ys)
	y := l.out(n)
	off := 0
	for i, k := range graph.Children(n) {
		ci := shapeOf(k)[1]
		l.emit("copy2d", []int{nn, ci * inner, ci * inner, 0, ctot * inner, off * inner}, nil, []int{in[i], y}, []int{y}, n)
		off += ci
	}
	return y, nil
}

func lowerConcatSlice(l *lowerer, n *gorgonia.Node, in []int) (int, error) {
	nn, ctot, inner := nci(shapeOf(graph.Children(n)[0]))
	off, w := int(field(n.Op(), "off").Int()), int(field(n.Op(), "width").Int())
	y := l.out(n)
	l.emit("copy2d", []int{nn, w * inner, ctot * inner, off * inner, w * inner, 0}, nil, []int{in[0], y}, []int{y}, n)
	return y, nil
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
