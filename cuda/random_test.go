package cuda

import (
	endian "encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"github.com/eraserelu/eraserelu/graph/ops/rng"
	"github.com/eraserelu/eraserelu/layers"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// gateStep is a hand-made step: y = apply(x) with the op's counter, then
// rng_advance, as Lower ends a backward pass.
func gateStep(t *testing.T, n int, op gorgonia.Op, apply func(x, rng, y int) Instr) (*Step, *Ref, int, int) {
	t.Helper()
	s := &Step{States: map[string]int{}, RNG: -1, X: -1, Y: -1, Loss: -1, Logits: -1}
	x := s.buf("x", n, Input)
	y := s.buf("y", n, Activation)
	s.Metrics, s.Hyper = s.buf("metrics", metricsLen, Metrics), s.buf("hyper", hyperLen, Hyper)
	s.RNG = s.buf("rng", 2, Hyper)
	in := apply(x, s.RNG, y)
	s.Randoms = []RandomOp{{Name: in.Kernel, Op: op.(RNGStater)}}
	s.emit(in)
	s.emit(rngAdvance.instr(ElemArgs{N: 1}, []int{s.RNG}, []int{s.RNG}))
	s.OptStart = len(s.Instrs)
	if err := s.Plan(); err != nil {
		t.Fatal(err)
	}
	r := NewRef(s)
	st, err := s.RNGState()
	if err != nil {
		t.Fatal(err)
	}
	copy(r.Buf(s.RNG), st)
	return s, r, x, y
}

func randomInput(n int, seed uint64) *tensor.Dense {
	rng := rand.New(rand.NewPCG(seed, 9))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return tensor.New(tensor.WithShape(n), tensor.WithBacking(v))
}

// TestDropoutMaskMatchesCPU: the device generator (dropout_apply as the
// reference interpreter runs it) draws the CPU op's masks bit for bit, step
// after step, from a fresh op and from a restored counter, and its counter
// stays equal to the op's.
func TestDropoutMaskMatchesCPU(t *testing.T) {
	for _, tc := range []struct {
		n     int
		p     float64
		seed  uint64
		start uint64
	}{
		{1, 0.5, 1, 0}, {7, 0.1, 2, 0}, {1000, 0.1, 3, 0}, {1001, 0.5, 4, 3}, {4096, 0.9, 5, 1 << 40}, {33, 0, 6, 0}, {50, 0.999, 7, 2},
	} {
		t.Run(fmt.Sprintf("n=%d,p=%v", tc.n, tc.p), func(t *testing.T) {
			g := gorgonia.NewGraph()
			xn := gorgonia.NewVector(g, tensor.Float32, gorgonia.WithShape(tc.n), gorgonia.WithName("x"))
			yn, err := ops.Dropout(xn, tc.p, ops.NewMode(), tc.seed)
			if err != nil {
				t.Fatal(err)
			}
			op := yn.Op().(*ops.DropoutOp)
			if err := op.SetRNGState(endian.LittleEndian.AppendUint64(nil, tc.start)); err != nil {
				t.Fatal(err)
			}
			s, r, x, y := gateStep(t, tc.n, op, func(x, rng, y int) Instr {
				return dropoutApply.instr(dropoutArgs(op.Describe().Random, tc.n, 0), []int{x, rng, y}, []int{y})
			})
			kept := 0
			for step := 0; step < 4; step++ {
				xv := randomInput(tc.n, uint64(step))
				copy(r.Buf(x), xv.Float32s())
				want, err := op.Do(xv)
				if err != nil {
					t.Fatal(err)
				}
				if err := r.Run(0, len(s.Instrs)); err != nil {
					t.Fatal(err)
				}
				for i, w := range want.(*tensor.Dense).Float32s() {
					if got := r.Buf(y)[i]; math.Float32bits(got) != math.Float32bits(w) {
						t.Fatalf("step %d element %d: ref %v, cpu %v", step, i, got, w)
					}
					if w != 0 {
						kept++
					}
				}
				st, _ := s.RNGState()
				if getU64(r.Buf(s.RNG), 0) != getU64(st, 0) || getU64(st, 0) != tc.start+uint64(step)+1 {
					t.Fatalf("step %d: counter ref %d, cpu %d", step, getU64(r.Buf(s.RNG), 0), getU64(st, 0))
				}
			}
			t.Logf("kept %d of %d", kept, 4*tc.n)
		})
	}
}

// TestStochDepthGateMatchesCPU: the device's integer form of the survival
// test takes the CPU op's decision at every step.
func TestStochDepthGateMatchesCPU(t *testing.T) {
	for _, survival := range []float64{1, 0.5, 0.73, 0.9444444444444444, 1e-9} {
		t.Run(fmt.Sprint(survival), func(t *testing.T) {
			g := gorgonia.NewGraph()
			xn := gorgonia.NewVector(g, tensor.Float32, gorgonia.WithShape(5), gorgonia.WithName("x"))
			yn, err := ops.StochasticDepth(xn, survival, ops.NewMode(), 99)
			if err != nil {
				t.Fatal(err)
			}
			op := yn.Op().(*ops.StochasticDepthOp)
			s, r, x, y := gateStep(t, 5, op, func(x, rng, y int) Instr {
				return stochDepthApply.instr(stochDepthArgs(op.Describe().Random, 5, 0), []int{x, rng, y}, []int{y})
			})
			xv := randomInput(5, 1)
			copy(r.Buf(x), xv.Float32s())
			const steps = 400
			kept := 0
			for step := 0; step < steps; step++ {
				want, err := op.Do(xv)
				if err != nil {
					t.Fatal(err)
				}
				if err := r.Run(0, len(s.Instrs)); err != nil {
					t.Fatal(err)
				}
				for i, w := range want.(*tensor.Dense).Float32s() {
					if got := r.Buf(y)[i]; math.Float32bits(got) != math.Float32bits(w) {
						t.Fatalf("step %d element %d: ref %v, cpu %v (cpu kept %v)", step, i, got, w, op.Kept())
					}
				}
				if op.Kept() {
					kept++
				}
			}
			if st, _ := s.RNGState(); getU64(st, 0) != steps || getU64(r.Buf(s.RNG), 0) != steps {
				t.Errorf("counters: cpu %d, ref %d, want %d", getU64(st, 0), getU64(r.Buf(s.RNG), 0), steps)
			}
			t.Logf("kept %d of %d", kept, steps)
		})
	}
}

// TestRNGStateRoundTrip: the RNG buffer's contents carry every op's
// counter in both directions.
func TestRNGStateRoundTrip(t *testing.T) {
	g := gorgonia.NewGraph()
	xn := gorgonia.NewVector(g, tensor.Float32, gorgonia.WithShape(3), gorgonia.WithName("x"))
	d, _ := ops.Dropout(xn, 0.5, ops.NewMode(), 1)
	sd, _ := ops.StochasticDepth(xn, 0.5, ops.NewMode(), 2)
	s := &Step{Randoms: []RandomOp{{"d", d.Op().(RNGStater)}, {"sd", sd.Op().(RNGStater)}}}
	v := make([]float32, 4)
	putU64(v, 0, 1<<63+5)
	putU64(v, 1, 77)
	if err := s.SetRNGState(v); err != nil {
		t.Fatal(err)
	}
	b, _ := d.Op().(*ops.DropoutOp).RNGState()
	if endian.LittleEndian.Uint64(b) != 1<<63+5 {
		t.Errorf("dropout counter %x", b)
	}
	got, err := s.RNGState()
	if err != nil {
		t.Fatal(err)
	}
	for i := range v {
		if math.Float32bits(got[i]) != math.Float32bits(v[i]) {
			t.Fatalf("word %d: %x, want %x", i, math.Float32bits(got[i]), math.Float32bits(v[i]))
		}
	}
	if err := s.SetRNGState(v[:3]); err == nil {
		t.Error("a short buffer was accepted")
	}
}

// lnMLP is an MLP with layer norm and dropout (no architecture of the
// paper combines them: the MLP uses batch norm, the scalar net of Figure 4
// layer norm but a squared-error loss of Gorgonia's own ops): 64 -> FC 300
// -> LN -> ReLU -> dropout -> FC 100 -> LN -> ReLU -> dropout -> FC 10.
// Rows of 300 and 100 features: longer and shorter than a block.
func lnMLP(t *testing.T, batch int) (*graph.Graph, *graph.Program, []float32, []int) {
	t.Helper()
	g := graph.New(tensor.Float32, 11)
	h := g.NewInput("x", tensor.Float32, batch, 64)
	y := g.NewInput("y", tensor.Int, batch)
	for i, units := range []int{300, 100} {
		var err error
		h, err = g.Build(fmt.Sprintf("layer%d", i+1), graph.MLP, func() (*gorgonia.Node, error) {
			h, err := layers.Dense(g, h, units, layers.Name("fc"))
			if err != nil {
				return nil, err
			}
			if h, err = layers.LayerNorm(g, h, layers.Name("ln")); err != nil {
				return nil, err
			}
			if h, err = ops.ReLU(h); err != nil {
				return nil, err
			}
			return layers.Dropout(g, h, 0.2)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var logits *gorgonia.Node
	if err := g.Within("head", func() error {
		var err error
		logits, err = layers.Dense(g, h, 10, layers.Name("fc"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	p := compileClassifier(t, g, logits, y)
	xs, ys := bindBatch(t, g, batch)
	return g, p, xs, ys
}

// TestRandomNetsMatchCPU lowers networks with dropout, stochastic depth and
// layer norm and runs three forward and backward passes on the reference
// interpreter and on the CPU (graph.Program.Train): the masks drawn from
// the device counters are the CPU's, so the loss, every gradient and the
// running statistics agree at every step, and the counters advance alike.
func TestRandomNetsMatchCPU(t *testing.T) {
	const steps = 3
	t.Run("mlp-12", func(t *testing.T) { // dropout 0.1 after every hidden layer, batch norm
		g, p, xs, ys := buildWith(t, arch.Config{Arch: "mlp-12", Batch: 8}, false, erase.Identity)
		s := checkSteps(t, g, p, xs, ys, 1e-4, steps)
		if len(s.Randoms) != 11 {
			t.Errorf("%d random ops, want the 11 dropouts", len(s.Randoms))
		}
	})
	t.Run("mlp-layernorm", func(t *testing.T) {
		g, p, xs, ys := lnMLP(t, 16)
		s := checkSteps(t, g, p, xs, ys, 1e-4, steps)
		if !strings.Contains(s.Describe(), "ln_fwd=2") {
			t.Errorf("layer norm not lowered: %s", s.Describe())
		}
	})
	t.Run("resnet-20-stochastic-depth", func(t *testing.T) {
		if testing.Short() {
			t.Skip("short")
		}
		g, p, xs, ys := buildWith(t, arch.Config{Arch: "resnet-20", Batch: 4, StochasticDepth: true}, false, erase.Identity)
		// Record each step's gates on the CPU: the test must see branches dropped and kept.
		var gates []*ops.StochasticDepthOp
		for _, n := range g.Expr().AllNodes() {
			if ops.IsStochasticDepth(n) {
				gates = append(gates, n.Op().(*ops.StochasticDepthOp))
			}
		}
		s := checkSteps(t, g, p, xs, ys, 1e-4, steps)
		if len(s.Randoms) != 9 || len(gates) != 9 {
			t.Errorf("%d random ops, %d gates, want 9", len(s.Randoms), len(gates))
		}
		// Replay the draws of the three steps on the counters the step started from.
		dropped := 0
		for _, op := range gates {
			st, _ := op.RNGState()
			last := endian.LittleEndian.Uint64(st)
			for k := uint64(1); k <= steps; k++ {
				if !rng.Survives(rng.Base(op.Describe().Random.Seed, last-k), rng.SurvivalThreshold(op.Survival())) {
					dropped++
				}
			}
		}
		t.Logf("%d of %d branch draws dropped", dropped, steps*len(gates))
		if dropped == 0 || dropped == steps*len(gates) {
			t.Errorf("%d of %d branches dropped: the test needs both cases", dropped, steps*len(gates))
		}
	})
}
