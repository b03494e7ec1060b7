package cuda

import (
	endian "encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// gateStep is a hand-made step: y = apply(x) with the op's counter, then
// rng_advance, as Lower ends a backward pass.
func gateStep(t *testing.T, n int, op gorgonia.Op, kernel string, ints []int, floats []float64) (*Step, *Ref, int, int) {
	t.Helper()
	s := &Step{States: map[string]int{}, RNG: -1, X: -1, Y: -1, Loss: -1, Logits: -1}
	x := s.buf("x", n, Input)
	y := s.buf("y", n, Activation)
	s.Metrics, s.Hyper = s.buf("metrics", metricsLen, Metrics), s.buf("hyper", hyperLen, Hyper)
	s.RNG = s.buf("rng", 2, Hyper)
	s.Randoms = []RandomOp{{Name: kernel, Op: op.(RNGStater)}}
	s.emit(Instr{Kernel: kernel, Ints: ints, Floats: floats, Bufs: []int{x, s.RNG, y}, Writes: []int{y}})
	s.emit(Instr{Kernel: "rng_advance", Ints: []int{1}, Bufs: []int{s.RNG}, Writes: []int{s.RNG}})
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
			ints, floats := dropoutArgs(op, tc.n, 0)
			s, r, x, y := gateStep(t, tc.n, op, "dropout_apply", ints, floats)
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
			s, r, x, y := gateStep(t, 5, op, "stochdepth_apply", stochDepthArgs(op, 5, 0), nil)
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

// TestStochDepthThreshold: m/2^53 < s exactly when m < ceil(s*2^53), at
// the boundary too.
func TestStochDepthThreshold(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for k := 0; k < 10000; k++ {
		s := rng.Float64()
		if k%3 == 0 {
			s = float64(rng.Uint64N(1<<20)) / (1 << 20) // dyadic: the threshold is s*2^53 itself
		}
		thr := stochDepthThreshold(s)
		for _, m := range []uint64{thr - 1, thr, thr + 1, rng.Uint64N(1 << 53)} {
			if m >= 1<<53 {
				continue
			}
			if cpu, dev := float64(m)/(1<<53) < s, m < thr; cpu != dev {
				t.Fatalf("survival %v, m %d: cpu %v, device %v", s, m, cpu, dev)
			}
		}
	}
	if stochDepthThreshold(1) != 1<<53 {
		t.Error("survival 1 must keep every draw")
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
