package ops_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/graph/ops"
	"github.com/eraserelu/eraserelu/graph/ops/opcheck"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func ntLabels(rng *rand.Rand, n, k int) []int {
	l := make([]int, n)
	for i := range l {
		l[i] = rng.IntN(k)
	}
	return l
}

func TestCrossEntropyGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	for _, tc := range []struct {
		n, k  int
		scale float64
	}{
		{4, 3, 1}, {1, 5, 1}, {6, 10, 3}, {3, 4, 30},
	} {
		logits := opcheck.Random(rng, tc.n, tc.k)
		for i, v := range logits.Float64s() {
			logits.Float64s()[i] = v * tc.scale
		}
		labels := ntLabels(rng, tc.n, tc.k)
		oc := opcheck.Case{
			Name:   fmt.Sprintf("SoftmaxCrossEntropy(%d,%d)x%v", tc.n, tc.k, tc.scale),
			Inputs: []*tensor.Dense{logits},
			WRT:    []int{0},
			Build: func(_ *gorgonia.ExprGraph, xs []*gorgonia.Node) (*gorgonia.Node, error) {
				l := gorgonia.NewConstant(tensor.New(tensor.WithShape(tc.n), tensor.WithBacking(append([]int(nil), labels...))), gorgonia.WithName("labels"))
				loss, _, err := ops.SoftmaxCrossEntropy(xs[0], l)
				if err != nil {
					return nil, err
				}
				// opcheck cannot take a scalar output (its build converts the
				// weight tensor before special-casing scalars): check the loss
				// as a one-element vector
				return gorgonia.Reshape(loss, tensor.Shape{1})
			},
		}
		opcheck.Gradients(t, oc)
		opcheck.Float32Agrees(t, oc, 1e-5)
	}
}

// ntCEGraph is logits (bound) and labels (an Int input node) -> loss, with
// the gradient of the logits, on a tape machine.
type ntCEGraph struct {
	logits, labels, loss, grad *gorgonia.Node
	op                         *ops.CrossEntropyOp
	vm                         gorgonia.VM
}

func ntNewCEGraph(t *testing.T, dt tensor.Dtype, n, k int) *ntCEGraph {
	t.Helper()
	g := gorgonia.NewGraph()
	c := &ntCEGraph{}
	c.logits = gorgonia.NewMatrix(g, dt, gorgonia.WithShape(n, k), gorgonia.WithName("logits"), gorgonia.WithInit(gorgonia.Zeroes()))
	c.labels = gorgonia.NewVector(g, tensor.Int, gorgonia.WithShape(n), gorgonia.WithName("labels"))
	var err error
	if c.loss, c.op, err = ops.SoftmaxCrossEntropy(c.logits, c.labels); err != nil {
		t.Fatal(err)
	}
	if c.loss.Dtype() != dt || !c.loss.IsScalar() {
		t.Fatalf("loss has dtype %v shape %v, want a %v scalar", c.loss.Dtype(), c.loss.Shape(), dt)
	}
	if d := c.loss.Op().(gorgonia.SDOp).DiffWRT(2); !d[0] || d[1] {
		t.Fatalf("DiffWRT = %v, want [true false]", d)
	}
	grads, err := gorgonia.Grad(c.loss, c.logits)
	if err != nil {
		t.Fatal(err)
	}
	c.grad = grads[0]
	c.vm = gorgonia.NewTapeMachine(g, gorgonia.BindDualValues(c.logits))
	return c
}

func (c *ntCEGraph) run(logits []float64, labels []int) error {
	lv := c.logits.Value().(*tensor.Dense)
	for i, v := range logits {
		if lv.Dtype() == tensor.Float32 {
			lv.Float32s()[i] = float32(v)
		} else {
			lv.Float64s()[i] = v
		}
	}
	if err := gorgonia.Let(c.labels, tensor.New(tensor.WithShape(len(labels)), tensor.WithBacking(labels))); err != nil {
		return err
	}
	c.vm.Reset()
	return c.vm.RunAll()
}

func TestCrossEntropyValues(t *testing.T) {
	const n, k = 4, 6
	logits := []float64{
		1, 2, 3, 4, 5, 6, // label 5: rank 0
		6, 5, 4, 3, 2, 1, // label 5: rank 5 (not top-5)
		0, 0, 0, 0, 0, 0, // label 2: ties, lower index first: rank 2
		1000, -1000, 0, 999, 0, 0, // label 3: rank 1, large logits
	}
	labels := []int{5, 5, 2, 3}
	wantRank := []int{0, 5, 2, 1}
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		c := ntNewCEGraph(t, dt, n, k)
		if err := c.run(logits, labels); err != nil {
			t.Fatal(err)
		}
		var want float64
		probs := make([]float64, n*k)
		for r := 0; r < n; r++ {
			z := logits[r*k : (r+1)*k]
			m := math.Inf(-1)
			for _, v := range z {
				m = math.Max(m, v)
			}
			var s float64
			for _, v := range z {
				s += math.Exp(v - m)
			}
			for j, v := range z {
				probs[r*k+j] = math.Exp(v-m) / s
			}
			want += (m + math.Log(s) - z[labels[r]]) / n
		}
		tol := 1e-12
		if dt == tensor.Float32 {
			tol = 1e-6
		}
		if got := ntValue(c.loss.Value())[0]; !ntClose(got, want, tol) || math.IsNaN(got) {
			t.Errorf("%v: loss %v, want %v", dt, got, want)
		}
		if got := c.op.Loss(); !ntClose(got, want, tol) {
			t.Errorf("%v: Loss() %v, want %v", dt, got, want)
		}
		grad := ntValue(c.grad.Value())
		for i := range grad {
			w := probs[i] / n
			if i%k == labels[i/k] {
				w -= 1.0 / n
			}
			if !ntClose(grad[i], w, tol) {
				t.Errorf("%v: dlogits[%d] = %v, want %v", dt, i, grad[i], w)
			}
		}
		if c.op.Count() != n {
			t.Errorf("Count() = %d", c.op.Count())
		}
		for _, kk := range []int{1, 2, 3, 5, 6} {
			want := 0
			for _, r := range wantRank {
				if r < kk {
					want++
				}
			}
			if got := c.op.Correct(kk); got != want {
				t.Errorf("%v: Correct(%d) = %d, want %d", dt, kk, got, want)
			}
		}
	}
}

func TestCrossEntropyErrors(t *testing.T) {
	c := ntNewCEGraph(t, tensor.Float64, 2, 3)
	for _, tc := range []struct {
		labels []int
		want   string
	}{
		{[]int{0, 3}, "label 3 of row 1 is outside [0, 3)"},
		{[]int{-2, 0}, "label -2 of row 0 is outside [0, 3)"},
	} {
		err := c.run(make([]float64, 6), tc.labels)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("labels %v: error %v, want %q", tc.labels, err, tc.want)
		}
	}
	if err := c.run(make([]float64, 6), []int{2, 0}); err != nil {
		t.Errorf("valid labels after errors: %v", err)
	}

	g := gorgonia.NewGraph()
	z := gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(2, 3), gorgonia.WithName("z"))
	z3 := gorgonia.NewTensor(g, tensor.Float64, 3, gorgonia.WithShape(2, 3, 1), gorgonia.WithName("z3"))
	l2 := gorgonia.NewVector(g, tensor.Int, gorgonia.WithShape(2), gorgonia.WithName("l2"))
	l3 := gorgonia.NewVector(g, tensor.Int, gorgonia.WithShape(3), gorgonia.WithName("l3"))
	lf := gorgonia.NewVector(g, tensor.Float64, gorgonia.WithShape(2), gorgonia.WithName("lf"))
	for _, tc := range []struct {
		name      string
		z, labels *gorgonia.Node
		want      string
	}{
		{"logits rank", z3, l2, "logits have shape"},
		{"labels length", z, l3, "labels have shape"},
		{"labels dtype", z, lf, "labels have dtype"},
	} {
		if _, _, err := ops.SoftmaxCrossEntropy(tc.z, tc.labels); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestCrossEntropyInNetwork trains logits = x·W with Gorgonia's own matmul
// below the loss and a Gorgonia addition above it: the loss falls.
func TestCrossEntropyInNetwork(t *testing.T) {
	g := gorgonia.NewGraph()
	rng := rand.New(rand.NewPCG(21, 22))
	const n, d, k = 16, 5, 4
	xv, teacher := opcheck.Random(rng, n, d), opcheck.Random(rng, d, k)
	lv := make([]int, n) // separable labels: argmax of x·teacher
	for i := range lv {
		best := math.Inf(-1)
		for j := 0; j < k; j++ {
			var s float64
			for e := 0; e < d; e++ {
				s += xv.Float64s()[i*d+e] * teacher.Float64s()[e*k+j]
			}
			if s > best {
				best, lv[i] = s, j
			}
		}
	}
	x := gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(n, d), gorgonia.WithName("x"), gorgonia.WithValue(xv))
	w := gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(d, k), gorgonia.WithName("w"), gorgonia.WithInit(gorgonia.Zeroes()))
	labels := gorgonia.NewVector(g, tensor.Int, gorgonia.WithShape(n), gorgonia.WithName("labels"),
		gorgonia.WithValue(tensor.New(tensor.WithShape(n), tensor.WithBacking(lv))))
	logits := gorgonia.Must(gorgonia.Mul(x, w))
	ce, op, err := ops.SoftmaxCrossEntropy(logits, labels)
	if err != nil {
		t.Fatal(err)
	}
	loss := gorgonia.Must(gorgonia.Add(ce, gorgonia.NewConstant(0.5)))
	grads, err := gorgonia.Grad(loss, w)
	if err != nil {
		t.Fatal(err)
	}
	vm := gorgonia.NewTapeMachine(g, gorgonia.BindDualValues(w))
	var first, last float64
	for step := 0; step < 200; step++ {
		ntRun(t, vm)
		if step == 0 {
			first = op.Loss()
		}
		last = op.Loss()
		// the loss value is op-owned: Gorgonia's ops downstream must not overwrite it
		if c, l := ntValue(ce.Value())[0], ntValue(loss.Value())[0]; c != last || l != c+0.5 {
			t.Fatalf("step %d: op loss %v, node %v, node + 0.5 = %v", step, last, c, l)
		}
		wv, gv := w.Value().(*tensor.Dense).Float64s(), grads[0].Value().(*tensor.Dense).Float64s()
		for i := range wv {
			wv[i] -= 2 * gv[i]
		}
	}
	if !(last < 0.5*first) {
		t.Errorf("loss %v -> %v after 200 steps, want it at least halved", first, last)
	}
	if op.Correct(1) < n*3/4 || op.Correct(k) != n {
		t.Errorf("top-1 %d, top-%d %d of %d", op.Correct(1), k, op.Correct(k), n)
	}
}

// TestCrossEntropyIgnoresPaddedRows checks that rows labelled IgnoreLabel
// change neither the loss, nor the gradient of the other rows, nor the metrics:
// a batch padded with such rows scores exactly as the unpadded batch.
func TestCrossEntropyIgnoresPaddedRows(t *testing.T) {
	logits := []float64{2, 1, 0, 0.5, 0.1, 3, 9, 9, 9}
	full := ntNewCEGraph(t, tensor.Float64, 3, 3)
	part := ntNewCEGraph(t, tensor.Float64, 2, 3)
	if err := full.run(logits, []int{0, 1, ops.IgnoreLabel}); err != nil {
		t.Fatal(err)
	}
	if err := part.run(logits[:6], []int{0, 1}); err != nil {
		t.Fatal(err)
	}
	if full.op.Loss() != part.op.Loss() || full.op.Count() != 2 || full.op.Correct(1) != part.op.Correct(1) || full.op.Correct(5) != 2 {
		t.Fatalf("padded: loss %v count %d top1 %d top5 %d; unpadded: loss %v top1 %d",
			full.op.Loss(), full.op.Count(), full.op.Correct(1), full.op.Correct(5), part.op.Loss(), part.op.Correct(1))
	}
	gf, gp := full.grad.Value().Data().([]float64), part.grad.Value().Data().([]float64)
	for i := range gp {
		if gf[i] != gp[i] {
			t.Fatalf("gradient[%d] = %v padded, %v unpadded", i, gf[i], gp[i])
		}
	}
	for _, v := range gf[6:] {
		if v != 0 {
			t.Fatalf("ignored row has gradient %v", gf[6:])
		}
	}
}
