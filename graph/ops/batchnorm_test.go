package ops_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/graph/ops"
	"github.com/eraserelu/eraserelu/graph/ops/opcheck"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ntRunning returns fresh running statistics (mean 0, var 1) of dtype dt.
func ntRunning(dt tensor.Dtype, c int) (mean, vr *tensor.Dense) {
	mean = tensor.New(tensor.Of(dt), tensor.WithShape(c))
	vr = tensor.New(tensor.Of(dt), tensor.WithShape(c))
	for i := 0; i < c; i++ {
		if dt == tensor.Float32 {
			vr.Float32s()[i] = 1
		} else {
			vr.Float64s()[i] = 1
		}
	}
	return mean, vr
}

func ntFloats(t *tensor.Dense) []float64 {
	switch d := t.Data().(type) {
	case []float64:
		return append([]float64(nil), d...)
	case []float32:
		out := make([]float64, len(d))
		for i, v := range d {
			out[i] = float64(v)
		}
		return out
	}
	panic("not a float tensor")
}

func ntValue(v gorgonia.Value) []float64 {
	switch d := v.Data().(type) {
	case []float64:
		return append([]float64(nil), d...)
	case []float32:
		out := make([]float64, len(d))
		for i, x := range d {
			out[i] = float64(x)
		}
		return out
	case float64:
		return []float64{d}
	case float32:
		return []float64{float64(d)}
	}
	panic("not a float value")
}

func TestBatchNormGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name     string
		shape    []int
		training bool
	}{
		{"NC", []int{5, 3}, true},
		{"NCHW", []int{2, 3, 2, 3}, true},
		{"N1HW", []int{3, 1, 2, 2}, true},
		{"C4", []int{4, 4, 1, 3}, true},
		{"inference/NC", []int{4, 3}, false},
		{"inference/NCHW", []int{2, 3, 2, 2}, false},
	} {
		c := tc.shape[1]
		gamma := opcheck.Random(rng, c)
		for i, v := range gamma.Float64s() {
			gamma.Float64s()[i] = v + 1.5 // away from 0
		}
		oc := opcheck.Case{
			Name:   "BatchNorm/" + tc.name,
			Inputs: []*tensor.Dense{opcheck.Random(rng, tc.shape...), gamma, opcheck.Random(rng, c)},
			Build: func(_ *gorgonia.ExprGraph, xs []*gorgonia.Node) (*gorgonia.Node, error) {
				rm, rv := ntRunning(xs[0].Dtype(), c)
				for i := 0; i < c; i++ { // non-trivial running statistics for inference
					v := rv.Data()
					switch d := v.(type) {
					case []float64:
						d[i] = 0.5 + 0.25*float64(i)
					case []float32:
						d[i] = float32(0.5 + 0.25*float64(i))
					}
				}
				mode := ops.NewMode()
				mode.SetTraining(tc.training)
				return ops.BatchNorm(xs[0], xs[1], xs[2], ops.BatchNormConfig{Mode: mode, RunningMean: rm, RunningVar: rv})
			},
		}
		opcheck.Gradients(t, oc)
		opcheck.Float32Agrees(t, oc, 1e-5)
	}
}

func TestBatchNormErrors(t *testing.T) {
	g := gorgonia.NewGraph()
	x := gorgonia.NewTensor(g, tensor.Float64, 4, gorgonia.WithShape(2, 3, 2, 2), gorgonia.WithName("x"))
	x3 := gorgonia.NewTensor(g, tensor.Float64, 3, gorgonia.WithShape(2, 3, 2), gorgonia.WithName("x3"))
	g3 := gorgonia.NewVector(g, tensor.Float64, gorgonia.WithShape(3), gorgonia.WithName("g3"))
	g4 := gorgonia.NewVector(g, tensor.Float64, gorgonia.WithShape(4), gorgonia.WithName("g4"))
	rm, rv := ntRunning(tensor.Float64, 3)
	rm4, _ := ntRunning(tensor.Float64, 4)
	mode := ops.NewMode()
	for _, tc := range []struct {
		name    string
		x, g, b *gorgonia.Node
		cfg     ops.BatchNormConfig
		want    string
	}{
		{"rank3", x3, g3, g3, ops.BatchNormConfig{Mode: mode, RunningMean: rm, RunningVar: rv}, "want (N,C,H,W) or (N,C)"},
		{"gamma", x, g4, g3, ops.BatchNormConfig{Mode: mode, RunningMean: rm, RunningVar: rv}, "gamma has shape"},
		{"beta", x, g3, g4, ops.BatchNormConfig{Mode: mode, RunningMean: rm, RunningVar: rv}, "beta has shape"},
		{"mode", x, g3, g3, ops.BatchNormConfig{RunningMean: rm, RunningVar: rv}, "no Mode"},
		{"running", x, g3, g3, ops.BatchNormConfig{Mode: mode, RunningVar: rv}, "no RunningMean"},
		{"runningShape", x, g3, g3, ops.BatchNormConfig{Mode: mode, RunningMean: rm4, RunningVar: rv}, "RunningMean has shape"},
		{"momentum", x, g3, g3, ops.BatchNormConfig{Mode: mode, RunningMean: rm, RunningVar: rv, Momentum: 1.5}, "momentum"},
		{"eps", x, g3, g3, ops.BatchNormConfig{Mode: mode, RunningMean: rm, RunningVar: rv, Eps: -1}, "eps"},
	} {
		_, err := ops.BatchNorm(tc.x, tc.g, tc.b, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// bnHand is a float64 reference: batch statistics per channel of x (N,C,inner).
func bnHand(x []float64, n, c, inner int) (mean, biased []float64) {
	mean, biased = make([]float64, c), make([]float64, c)
	m := float64(n * inner)
	for k := 0; k < c; k++ {
		var s float64
		for i := 0; i < n; i++ {
			for j := 0; j < inner; j++ {
				s += x[(i*c+k)*inner+j]
			}
		}
		mean[k] = s / m
		var v float64
		for i := 0; i < n; i++ {
			for j := 0; j < inner; j++ {
				d := x[(i*c+k)*inner+j] - mean[k]
				v += d * d
			}
		}
		biased[k] = v / m
	}
	return mean, biased
}

// bnNet is a small graph: y = BatchNorm(x), loss = sum(y*y*w) with fixed w,
// compiled into a training machine (with gradients) on demand.
type bnNet struct {
	g                *gorgonia.ExprGraph
	x, gamma, beta   *gorgonia.Node
	y, loss          *gorgonia.Node
	mode             *ops.Mode
	rm, rv           *tensor.Dense
	op               *ops.BatchNormOp
	xv               *tensor.Dense
	n, c, inner      int
	gammaV, betaV    []float64
	momentum, epsVal float64
}

func newBNNet(t *testing.T, n, c, inner int, momentum float64) *bnNet {
	t.Helper()
	b := &bnNet{g: gorgonia.NewGraph(), mode: ops.NewMode(), n: n, c: c, inner: inner, momentum: momentum, epsVal: 1e-5}
	b.rm, b.rv = ntRunning(tensor.Float64, c)
	b.xv = tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(n, c, 1, inner))
	b.x = gorgonia.NewTensor(b.g, tensor.Float64, 4, gorgonia.WithShape(n, c, 1, inner), gorgonia.WithName("x"), gorgonia.WithValue(b.xv))
	b.gammaV, b.betaV = make([]float64, c), make([]float64, c)
	for k := range b.gammaV {
		b.gammaV[k], b.betaV[k] = 1+0.1*float64(k), 0.2*float64(k)-0.1
	}
	b.gamma = gorgonia.NewVector(b.g, tensor.Float64, gorgonia.WithShape(c), gorgonia.WithName("gamma"),
		gorgonia.WithValue(tensor.New(tensor.WithShape(c), tensor.WithBacking(append([]float64(nil), b.gammaV...)))))
	b.beta = gorgonia.NewVector(b.g, tensor.Float64, gorgonia.WithShape(c), gorgonia.WithName("beta"),
		gorgonia.WithValue(tensor.New(tensor.WithShape(c), tensor.WithBacking(append([]float64(nil), b.betaV...)))))
	var err error
	b.y, err = ops.BatchNorm(b.x, b.gamma, b.beta, ops.BatchNormConfig{Momentum: momentum, Mode: b.mode, RunningMean: b.rm, RunningVar: b.rv})
	if err != nil {
		t.Fatal(err)
	}
	b.op = b.y.Op().(*ops.BatchNormOp)
	sq := gorgonia.Must(gorgonia.HadamardProd(b.y, b.y))
	b.loss = gorgonia.Must(gorgonia.Sum(sq))
	if _, err := gorgonia.Grad(b.loss, b.x, b.gamma, b.beta); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *bnNet) machine() gorgonia.VM {
	return gorgonia.NewTapeMachine(b.g, gorgonia.BindDualValues(b.x, b.gamma, b.beta))
}

func (b *bnNet) fill(rng *rand.Rand, shift float64) []float64 {
	d := b.xv.Float64s()
	for i := range d {
		d[i] = shift + 3*rng.NormFloat64()
	}
	return append([]float64(nil), d...)
}

func ntRun(t *testing.T, vm gorgonia.VM) {
	t.Helper()
	vm.Reset()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
}

func ntClose(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// TestBatchNormRunningStats trains k steps on different batches across two
// tape machines and mode switches, and checks the running statistics and
// the inference output against a hand computation.
func TestBatchNormRunningStats(t *testing.T) {
	const n, c, inner, mom = 4, 3, 5, 0.3
	b := newBNNet(t, n, c, inner, mom)
	rng := rand.New(rand.NewPCG(9, 9))
	wantMean, wantVar := make([]float64, c), make([]float64, c)
	for k := range wantVar {
		wantVar[k] = 1
	}
	m := float64(n * inner)
	step := func(vm gorgonia.VM, i int) {
		x := b.fill(rng, float64(i))
		b.mode.SetTraining(true)
		ntRun(t, vm)
		mean, biased := bnHand(x, n, c, inner)
		for k := 0; k < c; k++ {
			wantMean[k] = (1-mom)*wantMean[k] + mom*mean[k]
			wantVar[k] = (1-mom)*wantVar[k] + mom*biased[k]*m/(m-1)
		}
		// the training output uses the batch statistics
		y := ntValue(b.y.Value())
		for j, v := range x {
			k := (j / inner) % c
			want := (v-mean[k])/math.Sqrt(biased[k]+b.epsVal)*b.gammaV[k] + b.betaV[k]
			if !ntClose(y[j], want, 1e-10) {
				t.Fatalf("step %d: training y[%d] = %v, want %v", i, j, y[j], want)
			}
		}
	}
	check := func(when string) {
		t.Helper()
		for k := 0; k < c; k++ {
			if got := b.rm.Float64s()[k]; !ntClose(got, wantMean[k], 1e-12) {
				t.Errorf("%s: running mean[%d] = %v, want %v", when, k, got, wantMean[k])
			}
			if got := b.rv.Float64s()[k]; !ntClose(got, wantVar[k], 1e-12) {
				t.Errorf("%s: running var[%d] = %v, want %v", when, k, got, wantVar[k])
			}
		}
	}
	infer := func(vm gorgonia.VM, when string) {
		t.Helper()
		x := b.fill(rng, 0.5)
		b.mode.SetTraining(false)
		ntRun(t, vm)
		y := ntValue(b.y.Value())
		for j, v := range x {
			k := (j / inner) % c
			want := (v-wantMean[k])/math.Sqrt(wantVar[k]+b.epsVal)*b.gammaV[k] + b.betaV[k]
			if !ntClose(y[j], want, 1e-10) {
				t.Fatalf("%s: inference y[%d] = %v, want %v", when, j, y[j], want)
			}
		}
		b.mode.SetTraining(true)
	}

	vm := b.machine()
	for i := 0; i < 3; i++ {
		step(vm, i)
	}
	check("after 3 steps")
	infer(vm, "machine 1")
	check("after inference") // inference leaves them alone
	vm.Close()

	// a new machine, built after training, keeps the statistics
	vm2 := b.machine()
	check("after building a new machine")
	infer(vm2, "machine 2")
	for i := 3; i < 5; i++ {
		step(vm2, i)
		b.mode.SetTraining(false)
		b.mode.SetTraining(true)
	}
	check("after 5 steps on two machines")
	infer(vm2, "machine 2 after training")
	vm2.Close()

	// a forward-only machine in inference mode uses them as well
	vm3 := gorgonia.NewTapeMachine(b.g.SubgraphRoots(b.y))
	infer(vm3, "inference machine")
	check("end")
}

// TestBatchNormClone checks that a clone uses the target's running
// statistics and mode, and trains them, not the original's.
func TestBatchNormClone(t *testing.T) {
	b := newBNNet(t, 3, 2, 4, 0.5)
	rng := rand.New(rand.NewPCG(1, 1))
	vm := b.machine()
	b.fill(rng, 1)
	ntRun(t, vm)
	copies := map[*tensor.Dense]*tensor.Dense{}
	rebind := func(t *tensor.Dense) *tensor.Dense {
		c := t.Clone().(*tensor.Dense)
		copies[t] = c
		return c
	}
	mode := ops.NewMode()
	cloned := b.op.CloneOp(ops.CloneTarget{Mode: mode, Buffer: rebind})
	cp, ok := cloned.(*ops.BatchNormOp)
	if !ok {
		t.Fatalf("CloneOp returned %T", cloned)
	}
	cfg, orig := cp.Config(), b.op.Config()
	if cfg.RunningMean != copies[b.rm] || cfg.RunningVar != copies[b.rv] {
		t.Fatal("copy does not use the rebound buffers")
	}
	if cfg.Mode != mode {
		t.Fatal("copy does not use the target's mode")
	}
	if cfg.Momentum != orig.Momentum || cfg.Eps != orig.Eps {
		t.Fatalf("copy config %+v differs from %+v", cfg, orig)
	}
	if cp.Hashcode() == b.op.Hashcode() {
		t.Error("copy has the same hash as the original")
	}
	// train the copy in a graph of its own: the original statistics stay put
	before := ntFloats(b.rm)
	g2 := gorgonia.NewGraph()
	x2 := gorgonia.NewTensor(g2, tensor.Float64, 4, gorgonia.WithShape(3, 2, 1, 4), gorgonia.WithValue(b.xv.Clone()), gorgonia.WithName("x"))
	gm := gorgonia.NewVector(g2, tensor.Float64, gorgonia.WithShape(2), gorgonia.WithValue(tensor.New(tensor.WithBacking([]float64{1, 1}))), gorgonia.WithName("g"))
	bt := gorgonia.NewVector(g2, tensor.Float64, gorgonia.WithShape(2), gorgonia.WithValue(tensor.New(tensor.WithBacking([]float64{0, 0}))), gorgonia.WithName("b"))
	y2, err := gorgonia.ApplyOp(cp, x2, gm, bt)
	if err != nil {
		t.Fatal(err)
	}
	vm2 := gorgonia.NewTapeMachine(g2.SubgraphRoots(y2))
	cpBefore := ntFloats(copies[b.rm])
	ntRun(t, vm2)
	if got := ntFloats(b.rm); !ntEqual(got, before) {
		t.Errorf("training the copy changed the original running mean: %v -> %v", before, got)
	}
	if got := ntFloats(copies[b.rm]); ntEqual(got, cpBefore) {
		t.Error("training the copy did not update its running mean")
	}
}

func ntEqual(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestBatchNormTrainingNeedsTwoValues: PyTorch's rule, an error not a NaN.
func TestBatchNormTrainingNeedsTwoValues(t *testing.T) {
	g := gorgonia.NewGraph()
	x := gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(1, 2), gorgonia.WithName("x"),
		gorgonia.WithValue(tensor.New(tensor.WithShape(1, 2), tensor.WithBacking([]float64{1, 2}))))
	v := gorgonia.NewVector(g, tensor.Float64, gorgonia.WithShape(2), gorgonia.WithName("v"),
		gorgonia.WithValue(tensor.New(tensor.WithBacking([]float64{1, 1}))))
	rm, rv := ntRunning(tensor.Float64, 2)
	mode := ops.NewMode()
	y, err := ops.BatchNorm(x, v, v, ops.BatchNormConfig{Mode: mode, RunningMean: rm, RunningVar: rv})
	if err != nil {
		t.Fatal(err)
	}
	vm := gorgonia.NewTapeMachine(g.SubgraphRoots(y))
	if err := vm.RunAll(); err == nil || !strings.Contains(err.Error(), "more than one value per channel") {
		t.Errorf("training with N=1: error %v", err)
	}
	mode.SetTraining(false)
	vm.Reset()
	if err := vm.RunAll(); err != nil {
		t.Errorf("inference with N=1: %v", err)
	}
}
