package train

import (
	"math"
	"testing"

	"github.com/eraserelu/eraserelu/graph"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// fixedGrads is a GradSource that serves preset gradient tensors.
type fixedGrads map[*graph.Param]*tensor.Dense

func (f fixedGrads) Grad(p *graph.Param) (*tensor.Dense, error) { return f[p], nil }

func newTestParam(t testing.TB, dt tensor.Dtype, name string, noDecay bool, vals ...float64) *graph.Param {
	t.Helper()
	g := gorgonia.NewGraph()
	v := tensor.New(tensor.Of(dt), tensor.WithShape(len(vals)))
	setFloats(v, vals)
	n := gorgonia.NewTensor(g, dt, 1, gorgonia.WithShape(len(vals)), gorgonia.WithName(name), gorgonia.WithValue(v))
	return &graph.Param{Name: name, Node: n, NoDecay: noDecay}
}

func setFloats(d *tensor.Dense, vals []float64) {
	for i, x := range vals {
		if d.Dtype() == tensor.Float32 {
			d.Float32s()[i] = float32(x)
		} else {
			d.Float64s()[i] = x
		}
	}
}

func floats(d *tensor.Dense) []float64 {
	var out []float64
	if d.Dtype() == tensor.Float32 {
		for _, x := range d.Float32s() {
			out = append(out, float64(x))
		}
		return out
	}
	return append(out, d.Float64s()...)
}

// TestSGDHandComputed checks three steps against values worked out by hand
// from PyTorch's update rule: w0 = 1, gradients 0.5, -1, 0.25, lr 0.5.
func TestSGDHandComputed(t *testing.T) {
	grads := []float64{0.5, -1, 0.25}
	cases := []struct {
		name    string
		opts    SGDOptions
		noDecay bool
		want    []float64 // w after each step
	}{
		// g' = g + 0.1 w; v = 0.9 v + g'; w -= 0.5 v
		// 1: g'=0.6, v=0.6, w=0.7; 2: g'=-0.93, v=-0.39, w=0.895; 3: g'=0.3395, v=-0.0115, w=0.90075
		{"momentum+decay", SGDOptions{Momentum: 0.9, WeightDecay: 0.1}, false, []float64{0.7, 0.895, 0.90075}},
		// d = g' + 0.9 v
		// 1: v=0.6, d=1.14, w=0.43; 2: g'=-0.957, v=-0.417, d=-1.3323, w=1.09615;
		// 3: g'=0.359615, v=-0.015685, d=0.3454985, w=0.92340075
		{"nesterov+decay", SGDOptions{Momentum: 0.9, WeightDecay: 0.1, Nesterov: true}, false, []float64{0.43, 1.09615, 0.92340075}},
		// the first step copies the gradient (no dampening), later v = 0.9 v + 0.5 g
		// 1: v=0.5, w=0.75; 2: v=-0.05, w=0.775; 3: v=0.08, w=0.735
		{"dampening", SGDOptions{Momentum: 0.9, Dampening: 0.5}, false, []float64{0.75, 0.775, 0.735}},
		// plain SGD with decay: 1: g'=0.6, w=0.7; 2: g'=-0.93, w=1.165; 3: g'=0.3665, w=0.98175
		{"no momentum", SGDOptions{WeightDecay: 0.1}, false, []float64{0.7, 1.165, 0.98175}},
		// NoDecay ignores the 0.1: 1: v=0.5, w=0.75; 2: v=-0.55, w=1.025; 3: v=-0.245, w=1.1475
		{"no-decay param", SGDOptions{Momentum: 0.9, WeightDecay: 0.1}, true, []float64{0.75, 1.025, 1.1475}},
	}
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		tol := 1e-12
		if dt == tensor.Float32 {
			tol = 1e-6
		}
		for _, c := range cases {
			p := newTestParam(t, dt, "w", c.noDecay, 1, 1)
			opt, err := NewSGD([]*graph.Param{p}, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			for k, g := range grads {
				gt := tensor.New(tensor.Of(dt), tensor.WithShape(2))
				setFloats(gt, []float64{g, g})
				if err := opt.Step(fixedGrads{p: gt}, 0.5); err != nil {
					t.Fatal(err)
				}
				for i, w := range floats(p.Node.Value().(*tensor.Dense)) {
					if math.Abs(w-c.want[k]) > tol {
						t.Errorf("%v %s step %d: w[%d] = %.10g, want %.10g", dt, c.name, k+1, i, w, c.want[k])
					}
				}
				for _, x := range floats(gt) {
					if x != 0 {
						t.Errorf("%v %s: gradient not zeroed after the step", dt, c.name)
						break
					}
				}
			}
			opt.Close()
		}
	}
}

func TestSGDValidate(t *testing.T) {
	p := newTestParam(t, tensor.Float64, "w", false, 1)
	for _, o := range []SGDOptions{{Nesterov: true}, {Momentum: 0.9, Dampening: 0.1, Nesterov: true}, {Momentum: -1}, {WeightDecay: math.NaN()}} {
		if _, err := NewSGD([]*graph.Param{p}, o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func bigParams(t testing.TB, dt tensor.Dtype) ([]*graph.Param, fixedGrads) {
	sizes := []int{3 << 16, 1000, 7}
	var ps []*graph.Param
	grads := fixedGrads{}
	for i, n := range sizes {
		vals := make([]float64, n)
		gv := make([]float64, n)
		for j := range vals {
			vals[j] = math.Sin(float64(j + i))
			gv[j] = math.Cos(float64(3*j + i))
		}
		p := newTestParam(t, dt, "p"+string(rune('a'+i)), i == 2, vals...)
		g := tensor.New(tensor.Of(dt), tensor.WithShape(n))
		setFloats(g, gv)
		ps = append(ps, p)
		grads[p] = g
	}
	return ps, grads
}

// TestSGDStepAllocatesNothing covers both the serial and the parallel path.
func TestSGDStepAllocatesNothing(t *testing.T) {
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		for _, workers := range []int{1, 4} {
			ps, grads := bigParams(t, dt)
			opt, err := NewSGD(ps, SGDOptions{Momentum: 0.9, WeightDecay: 5e-4, Nesterov: true})
			if err != nil {
				t.Fatal(err)
			}
			opt.workers = workers
			allocs := testing.AllocsPerRun(5, func() {
				if err := opt.Step(grads, 0.1); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("%v, %d workers: %v allocations per step, want 0", dt, workers, allocs)
			}
			opt.Close()
		}
	}
}

// TestSGDParallelIsDeterministic: the split over workers changes nothing.
func TestSGDParallelIsDeterministic(t *testing.T) {
	var results [][]float64
	for _, workers := range []int{1, 3, 8} {
		ps, grads := bigParams(t, tensor.Float32)
		opt, _ := NewSGD(ps, SGDOptions{Momentum: 0.9, WeightDecay: 1e-4})
		opt.workers = workers
		for k := 0; k < 3; k++ {
			for _, g := range grads {
				setFloats(g, floats(ps[0].Node.Value().(*tensor.Dense))[:g.Size()])
			}
			if err := opt.Step(grads, 0.05); err != nil {
				t.Fatal(err)
			}
		}
		var all []float64
		for _, p := range ps {
			all = append(all, floats(p.Node.Value().(*tensor.Dense))...)
		}
		results = append(results, all)
		opt.Close()
	}
	for w := 1; w < len(results); w++ {
		for i := range results[0] {
			if math.Float64bits(results[0][i]) != math.Float64bits(results[w][i]) {
				t.Fatalf("run %d differs from the serial one at %d: %v vs %v", w, i, results[w][i], results[0][i])
			}
		}
	}
}

func TestSGDStepAfterClose(t *testing.T) {
	ps, grads := bigParams(t, tensor.Float64)
	opt, _ := NewSGD(ps, SGDOptions{})
	opt.Close()
	opt.Close()
	if err := opt.Step(grads, 0.1); err == nil {
		t.Error("step after Close succeeded")
	}
}

func BenchmarkSGDStep(b *testing.B) {
	ps, grads := bigParams(b, tensor.Float32)
	opt, _ := NewSGD(ps, SGDOptions{Momentum: 0.9, WeightDecay: 5e-4})
	defer opt.Close()
	b.ReportAllocs()
	for b.Loop() {
		opt.Step(grads, 0.1)
	}
}
