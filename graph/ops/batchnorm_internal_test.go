package ops

// Internal tests of the normalisation-family ops: a warm op allocates
// nothing per run, the parallel kernels agree bitwise with the serial ones,
// and benchmarks at ResNet-20 shapes.

import (
	"math/rand/v2"
	"runtime"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func ntRandDense(rng *rand.Rand, dt tensor.Dtype, shape ...int) *tensor.Dense {
	t := tensor.New(tensor.Of(dt), tensor.WithShape(shape...))
	if dt == tensor.Float32 {
		for i := range t.Float32s() {
			t.Float32s()[i] = float32(2*rng.Float64() - 1)
		}
	} else {
		for i := range t.Float64s() {
			t.Float64s()[i] = 2*rng.Float64() - 1
		}
	}
	return t
}

// ntNode is a graph variable with the value's shape (for the constructors).
func ntNode(g *gorgonia.ExprGraph, name string, v *tensor.Dense) *gorgonia.Node {
	return gorgonia.NewTensor(g, v.Dtype(), v.Dims(), gorgonia.WithShape(v.Shape()...), gorgonia.WithName(name), gorgonia.WithValue(v))
}

// ntOpCase is one op with its input values; the forward runs first.
type ntOpCase struct {
	name string
	op   gorgonia.Op
	in   []gorgonia.Value
}

// ntCases builds every op of this family, forward and backward, on inputs
// of dtype dt: x has shape (n, c, h, w).
func ntCases(t testing.TB, dt tensor.Dtype, n, c, h, w int) []ntOpCase {
	rng := rand.New(rand.NewPCG(1, 2))
	g := gorgonia.NewGraph()
	xv := ntRandDense(rng, dt, n, c, h, w)
	dyv := ntRandDense(rng, dt, n, c, h, w)
	vecv := ntRandDense(rng, dt, c)
	x, vec := ntNode(g, "x", xv), ntNode(g, "vec", vecv)
	mode := NewMode()
	must := func(nd *gorgonia.Node, err error) *gorgonia.Node {
		if err != nil {
			t.Fatal(err)
		}
		return nd
	}
	var cases []ntOpCase

	rm := tensor.New(tensor.Of(dt), tensor.WithShape(c))
	rv := tensor.New(tensor.Of(dt), tensor.WithShape(c))
	bn := must(BatchNorm(x, vec, vec, BatchNormConfig{Mode: mode, RunningMean: rm, RunningVar: rv})).Op().(*BatchNormOp)
	bnY, _ := bn.Do(xv, vecv, vecv)
	red := ntRandDense(rng, dt, 2, c)
	cases = append(cases,
		ntOpCase{"BatchNorm", bn, []gorgonia.Value{xv, vecv, vecv}},
		ntOpCase{"BatchNormParamGrad", &bnParamGradOp{fwd: bn}, []gorgonia.Value{xv, bnY, dyv}},
		ntOpCase{"BatchNormInputGrad", &bnInputGradOp{fwd: bn}, []gorgonia.Value{xv, vecv, dyv, red}},
		ntOpCase{"Row", &normRowOp{row: 1}, []gorgonia.Value{red}},
	)

	x2v, dy2v := ntRandDense(rng, dt, n*c, h*w), ntRandDense(rng, dt, n*c, h*w)
	dvec := ntRandDense(rng, dt, h*w)
	x2, dnode := ntNode(g, "x2", x2v), ntNode(g, "d", dvec)
	ln := must(LayerNorm(x2, dnode, dnode, 0)).Op().(*LayerNormOp)
	lnY, _ := ln.Do(x2v, dvec, dvec)
	cases = append(cases,
		ntOpCase{"LayerNorm", ln, []gorgonia.Value{x2v, dvec, dvec}},
		ntOpCase{"LayerNormInputGrad", &lnInputGradOp{fwd: ln}, []gorgonia.Value{x2v, dvec, lnY, dy2v}},
		ntOpCase{"LayerNormParamGrad", &lnParamGradOp{fwd: ln}, []gorgonia.Value{x2v, lnY, dy2v}},
	)

	do := must(Dropout(x, 0.3, mode, 1)).Op().(*DropoutOp)
	doY, _ := do.Do(xv)
	sd := must(StochasticDepth(x, 0.5, mode, 1)).Op().(*StochasticDepthOp)
	sdY, _ := sd.Do(xv)
	cases = append(cases,
		ntOpCase{"Dropout", do, []gorgonia.Value{xv}},
		ntOpCase{"DropoutBackward", &dropoutBackwardOp{fwd: do}, []gorgonia.Value{doY, dyv}},
		ntOpCase{"StochasticDepth", sd, []gorgonia.Value{xv}},
		ntOpCase{"StochasticDepthBackward", &stochDepthBackwardOp{fwd: sd}, []gorgonia.Value{sdY, dyv}},
	)

	pr := must(PReLU(x, vec)).Op().(*PReLUOp)
	cases = append(cases,
		ntOpCase{"PReLU", pr, []gorgonia.Value{xv, vecv}},
		ntOpCase{"PReLUInputGrad", &preluInputGradOp{rank: 4}, []gorgonia.Value{xv, vecv, dyv}},
		ntOpCase{"PReLUAlphaGrad", &preluAlphaGradOp{rank: 4}, []gorgonia.Value{xv, dyv}},
	)

	add := must(Add(x, x)).Op().(*AddOp)
	catN := must(Concat(x, x, x))
	cat := catN.Op().(*ConcatOp)
	catDy := ntRandDense(rng, dt, catN.Shape()...)
	cases = append(cases,
		ntOpCase{"Add", add, []gorgonia.Value{xv, dyv}},
		ntOpCase{"Concat", cat, []gorgonia.Value{xv, dyv, xv}},
		ntOpCase{"ConcatSlice", &concatSliceOp{rank: 4, off: c, width: c}, []gorgonia.Value{catDy}},
	)

	zpN := must(ZeroPadShortcut(x, 2*c, 2))
	zp := zpN.Op().(*ZeroPadShortcutOp)
	zpDy := ntRandDense(rng, dt, zpN.Shape()...)
	cases = append(cases,
		ntOpCase{"ZeroPadShortcut", zp, []gorgonia.Value{xv}},
		ntOpCase{"ZeroPadShortcutBackward", &zeroPadBackwardOp{fwd: zp}, []gorgonia.Value{zpDy}},
	)

	k := 10
	logitsV := ntRandDense(rng, dt, n*c, k)
	labelsV := tensor.New(tensor.WithShape(n*c), tensor.WithBacking(make([]int, n*c)))
	for i := range labelsV.Ints() {
		labelsV.Ints()[i] = rng.IntN(k)
	}
	logits := ntNode(g, "logits", logitsV)
	labels := gorgonia.NewVector(g, tensor.Int, gorgonia.WithShape(n*c), gorgonia.WithName("labels"), gorgonia.WithValue(labelsV))
	lossN, ce, err := SoftmaxCrossEntropy(logits, labels)
	if err != nil {
		t.Fatal(err)
	}
	_ = lossN
	lossV, _ := ce.Do(logitsV, labelsV)
	one := gorgonia.Value(gorgonia.NewF64(1))
	if dt == tensor.Float32 {
		one = gorgonia.NewF32(1)
	}
	cases = append(cases,
		ntOpCase{"SoftmaxCrossEntropy", ce, []gorgonia.Value{logitsV, labelsV}},
		ntOpCase{"SoftmaxCrossEntropyBackward", &ceBackwardOp{fwd: ce}, []gorgonia.Value{logitsV, labelsV, lossV, one}},
	)
	return cases
}

// TestNormOpsDoNotAllocate: with warm buffers, Do of every op of this family
// allocates nothing (shapes small enough that the kernels run inline; the
// parallel path costs only the goroutine launches of cpu.ParallelItems).
func TestNormOpsDoNotAllocate(t *testing.T) {
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		for _, training := range []bool{true, false} {
			cases := ntCases(t, dt, 4, 3, 5, 5)
			for _, c := range cases {
				if m, ok := ntModeOf(c.op); ok {
					m.SetTraining(training)
				}
				if _, err := c.op.Do(c.in...); err != nil {
					t.Fatalf("%s (%v): %v", c.name, dt, err)
				}
				allocs := testing.AllocsPerRun(20, func() {
					if _, err := c.op.Do(c.in...); err != nil {
						t.Fatal(err)
					}
				})
				if allocs != 0 {
					t.Errorf("%s (%v, training %v): %v allocations per Do", c.name, dt, training, allocs)
				}
			}
		}
	}
}

func ntModeOf(op gorgonia.Op) (*Mode, bool) {
	switch o := op.(type) {
	case *BatchNormOp:
		return o.mode, true
	case *DropoutOp:
		return o.mode, true
	case *StochasticDepthOp:
		return o.mode, true
	}
	return nil, false
}

// TestNormOpsParallelAgree: at a size where the kernels split over cores,
// the results are bitwise those of a single core.
func TestNormOpsParallelAgree(t *testing.T) {
	if testing.Short() {
		t.Skip("large tensors")
	}
	results := func(procs int) map[string][]float64 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		out := map[string][]float64{}
		for _, c := range ntCases(t, tensor.Float32, 8, 4, 64, 64) {
			v, err := c.op.Do(c.in...)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			switch d := v.Data().(type) {
			case []float32:
				f := make([]float64, len(d))
				for i, x := range d {
					f[i] = float64(x)
				}
				out[c.name] = f
			case float32:
				out[c.name] = []float64{float64(d)}
			}
		}
		return out
	}
	one, many := results(1), results(4)
	for name, a := range one {
		b := many[name]
		if len(a) != len(b) {
			t.Fatalf("%s: %d vs %d values", name, len(a), len(b))
		}
		for i := range a {
			if a[i] != b[i] {
				t.Errorf("%s: element %d: %v on one core, %v on four", name, i, a[i], b[i])
				break
			}
		}
	}
}

// bnBench sets up a warm float32 batch norm at ResNet-20's first stage
// shape (128, 16, 32, 32) in training mode.
func bnBench(b *testing.B) (op *BatchNormOp, x, gamma, beta, y, dy *tensor.Dense) {
	rng := rand.New(rand.NewPCG(1, 2))
	g := gorgonia.NewGraph()
	x = ntRandDense(rng, tensor.Float32, 128, 16, 32, 32)
	dy = ntRandDense(rng, tensor.Float32, 128, 16, 32, 32)
	gamma, beta = ntRandDense(rng, tensor.Float32, 16), ntRandDense(rng, tensor.Float32, 16)
	rm := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(16))
	rv := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(16))
	n, err := BatchNorm(ntNode(g, "x", x), ntNode(g, "g", gamma), ntNode(g, "b", beta), BatchNormConfig{Mode: NewMode(), RunningMean: rm, RunningVar: rv})
	if err != nil {
		b.Fatal(err)
	}
	op = n.Op().(*BatchNormOp)
	v, err := op.Do(x, gamma, beta)
	if err != nil {
		b.Fatal(err)
	}
	return op, x, gamma, beta, v.(*tensor.Dense), dy
}

// BenchmarkBatchNormForward: training mode (statistics, running update,
// normalisation). Bytes are those streamed: x read twice, y written once.
func BenchmarkBatchNormForward(b *testing.B) {
	op, x, gamma, beta, _, _ := bnBench(b)
	b.SetBytes(int64(3 * 4 * x.Size()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := op.Do(x, gamma, beta); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBatchNormBackward: the gradients of gamma and beta (x and dy
// read) and of x (x and dy read, dx written): five tensors streamed.
func BenchmarkBatchNormBackward(b *testing.B) {
	op, x, gamma, _, y, dy := bnBench(b)
	pg, ig := &bnParamGradOp{fwd: op}, &bnInputGradOp{fwd: op}
	red, err := pg.Do(x, y, dy) // warm the output buffers
	if err != nil {
		b.Fatal(err)
	}
	if _, err := ig.Do(x, gamma, dy, red); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(5 * 4 * x.Size()))
	b.ReportAllocs()
	for b.Loop() {
		red, err := pg.Do(x, y, dy)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ig.Do(x, gamma, dy, red); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCrossEntropy: forward and backward, CIFAR (128, 10) and ImageNet (256, 1000).
func BenchmarkCrossEntropy(b *testing.B) {
	for _, s := range []struct {
		name string
		n, k int
	}{{"128x10", 128, 10}, {"256x1000", 256, 1000}} {
		b.Run(s.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(3, 4))
			logits := ntRandDense(rng, tensor.Float32, s.n, s.k)
			labels := tensor.New(tensor.WithShape(s.n), tensor.WithBacking(make([]int, s.n)))
			for i := range labels.Ints() {
				labels.Ints()[i] = rng.IntN(s.k)
			}
			op := &CrossEntropyOp{}
			bw := &ceBackwardOp{fwd: op}
			one := gorgonia.NewF32(1)
			b.SetBytes(int64(2 * 4 * logits.Size()))
			b.ReportAllocs()
			for b.Loop() {
				loss, err := op.Do(logits, labels)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := bw.Do(logits, labels, loss, one); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
