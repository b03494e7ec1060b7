package train

import (
	"fmt"
	"hash"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sort"
	"sync/atomic"
	"testing"

	"github.com/chewxy/hm"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/graph/ops"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// This file holds the test fixtures: a softmax cross-entropy op with int
// labels (label -1 ignored) that is a Scorer, a dropout-like op with RNG
// state, small networks built from them and Gorgonia built-ins, and a
// synthetic classification data set whose order depends only on
// (seed, epoch).

var testOpSerial atomic.Uint64

// ceOp is mean softmax cross-entropy over the rows with a label >= 0.
type ceOp struct {
	id    uint64
	ranks []int // rank of the true logit per labelled row of the last pass
}

func newCE(logits, labels *gorgonia.Node) (*gorgonia.Node, error) {
	return gorgonia.ApplyOp(&ceOp{id: testOpSerial.Add(1)}, logits, labels)
}

func (op *ceOp) Arity() int { return 2 }
func (op *ceOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(gorgonia.TensorType{Dims: 2, Of: a}, gorgonia.TensorType{Dims: 1, Of: tensor.Int}, a)
}
func (op *ceOp) InferShape(...gorgonia.DimSizer) (tensor.Shape, error) {
	return tensor.ScalarShape(), nil
}
func (op *ceOp) ReturnsPtr() bool      { return false }
func (op *ceOp) CallsExtern() bool     { return false }
func (op *ceOp) OverwritesInput() int  { return -1 }
func (op *ceOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "testCE#%d", op.id) }
func (op *ceOp) Hashcode() uint32      { return hashOf(op) }
func (op *ceOp) String() string        { return "testCE" }
func (op *ceOp) DiffWRT(int) []bool    { return []bool{true, false} }

func (op *ceOp) Correct(k int) int {
	c := 0
	for _, r := range op.ranks {
		if r < k {
			c++
		}
	}
	return c
}
func (op *ceOp) Count() int { return len(op.ranks) }

func hashOf(op interface{ WriteHash(hash.Hash) }) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}

func rowsOf(v gorgonia.Value) (data []float64, f32 []float32, rows, cols int) {
	d := v.(*tensor.Dense)
	rows, cols = d.Shape()[0], d.Shape()[1]
	if d.Dtype() == tensor.Float32 {
		return nil, d.Float32s(), rows, cols
	}
	return d.Float64s(), nil, rows, cols
}

func at(d []float64, f []float32, i int) float64 {
	if d != nil {
		return d[i]
	}
	return float64(f[i])
}

func (op *ceOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	d, f, rows, cols := rowsOf(vs[0])
	labels := vs[1].(*tensor.Dense).Ints()
	op.ranks = op.ranks[:0]
	var sum float64
	for i := 0; i < rows; i++ {
		y := labels[i]
		if y < 0 {
			continue
		}
		if y >= cols {
			return nil, fmt.Errorf("label %d out of range [0, %d)", y, cols)
		}
		m := math.Inf(-1)
		for j := 0; j < cols; j++ {
			m = math.Max(m, at(d, f, i*cols+j))
		}
		var s float64
		rank := 0
		for j := 0; j < cols; j++ {
			v := at(d, f, i*cols+j)
			s += math.Exp(v - m)
			if v > at(d, f, i*cols+y) {
				rank++
			}
		}
		sum += m + math.Log(s) - at(d, f, i*cols+y)
		op.ranks = append(op.ranks, rank)
	}
	loss := sum / float64(max(len(op.ranks), 1))
	if f != nil {
		return gorgonia.NewF32(float32(loss)), nil
	}
	return gorgonia.NewF64(loss), nil
}

func (op *ceOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	dx, err := gorgonia.ApplyOp(&ceBackOp{id: testOpSerial.Add(1)}, inputs[0], inputs[1], grad)
	if err != nil {
		return nil, err
	}
	return gorgonia.Nodes{dx, nil}, nil
}

// ceBackOp is d loss / d logits = (softmax - onehot) * grad / count.
type ceBackOp struct{ id uint64 }

func (op *ceBackOp) Arity() int { return 3 }
func (op *ceBackOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t := gorgonia.TensorType{Dims: 2, Of: a}
	return hm.NewFnType(t, gorgonia.TensorType{Dims: 1, Of: tensor.Int}, a, t)
}
func (op *ceBackOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	return in[0].(tensor.Shape).Clone(), nil
}
func (op *ceBackOp) ReturnsPtr() bool      { return false }
func (op *ceBackOp) CallsExtern() bool     { return false }
func (op *ceBackOp) OverwritesInput() int  { return -1 }
func (op *ceBackOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "testCEBack#%d", op.id) }
func (op *ceBackOp) Hashcode() uint32      { return hashOf(op) }
func (op *ceBackOp) String() string        { return "testCEBack" }
func (op *ceBackOp) DiffWRT(int) []bool    { return []bool{false, false, false} }
func (op *ceBackOp) SymDiff(gorgonia.Nodes, *gorgonia.Node, *gorgonia.Node) (gorgonia.Nodes, error) {
	return nil, fmt.Errorf("not differentiable")
}

func (op *ceBackOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	d, f, rows, cols := rowsOf(vs[0])
	labels := vs[1].(*tensor.Dense).Ints()
	g := graph.ScalarOf(vs[2])
	count := 0
	for _, y := range labels {
		if y >= 0 {
			count++
		}
	}
	out := make([]float64, rows*cols)
	for i := 0; i < rows; i++ {
		y := labels[i]
		if y < 0 {
			continue
		}
		m := math.Inf(-1)
		for j := 0; j < cols; j++ {
			m = math.Max(m, at(d, f, i*cols+j))
		}
		var s float64
		for j := 0; j < cols; j++ {
			s += math.Exp(at(d, f, i*cols+j) - m)
		}
		for j := 0; j < cols; j++ {
			p := math.Exp(at(d, f, i*cols+j)-m) / s
			if j == y {
				p--
			}
			out[i*cols+j] = p * g / float64(count)
		}
	}
	if f != nil {
		o32 := make([]float32, len(out))
		for i, v := range out {
			o32[i] = float32(v)
		}
		return tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(o32)), nil
	}
	return tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(out)), nil
}

// noiseOp adds uniform noise in [-s, s) from its own RNG in training mode
// (identity in inference): an op with RNG state, like dropout.
type noiseOp struct {
	id    uint64
	mode  *ops.Mode
	scale float64
	state *rand.PCG
	rng   *rand.Rand
}

func newNoise(g *graph.Graph, x *gorgonia.Node, scale float64) (*gorgonia.Node, error) {
	pcg := rand.NewPCG(g.Rand().Uint64(), 7)
	return gorgonia.ApplyOp(&noiseOp{id: testOpSerial.Add(1), mode: g.Mode(), scale: scale, state: pcg, rng: rand.New(pcg)}, x)
}

func (op *noiseOp) Arity() int { return 1 }
func (op *noiseOp) Type() hm.Type {
	t := gorgonia.TensorType{Dims: 2, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t)
}
func (op *noiseOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	return in[0].(tensor.Shape).Clone(), nil
}
func (op *noiseOp) ReturnsPtr() bool      { return false }
func (op *noiseOp) CallsExtern() bool     { return false }
func (op *noiseOp) OverwritesInput() int  { return -1 }
func (op *noiseOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "testNoise#%d", op.id) }
func (op *noiseOp) Hashcode() uint32      { return hashOf(op) }
func (op *noiseOp) String() string        { return "testNoise" }
func (op *noiseOp) DiffWRT(int) []bool    { return []bool{true} }
func (op *noiseOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	return gorgonia.Nodes{grad}, nil
}
func (op *noiseOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	x := vs[0].(*tensor.Dense)
	y := x.Clone().(*tensor.Dense)
	if !op.mode.Training() {
		return y, nil
	}
	if y.Dtype() == tensor.Float32 {
		for i, v := range y.Float32s() {
			y.Float32s()[i] = v + float32(op.scale*(2*op.rng.Float64()-1))
		}
	} else {
		for i, v := range y.Float64s() {
			y.Float64s()[i] = v + op.scale*(2*op.rng.Float64()-1)
		}
	}
	return y, nil
}
func (op *noiseOp) RNGState() ([]byte, error)  { return op.state.MarshalBinary() }
func (op *noiseOp) SetRNGState(b []byte) error { return op.state.UnmarshalBinary(b) }

// netSpec describes a test network.
type netSpec struct {
	dtype          tensor.Dtype
	batch, in, out int
	hidden         int     // 0: a linear classifier
	noise          float64 // > 0: a noise op (RNG state) after the hidden layer
	bias           bool    // a bias (NoDecay) on the logits
	seed           uint64
}

// buildNet builds x -> [W1 -> ReLU -> noise] -> W2 (+b) -> logits -> CE(y) = loss.
func buildNet(t testing.TB, s netSpec) *graph.Program {
	t.Helper()
	g := graph.New(s.dtype, s.seed)
	x := g.NewInput("x", s.dtype, s.batch, s.in)
	y := g.NewInput("y", tensor.Int, s.batch)
	h := x
	width := s.in
	var err error
	if s.hidden > 0 {
		w1 := g.NewParam("w1", []int{s.in, s.hidden}, graph.HeNormal(), false)
		if h, err = gorgonia.Mul(h, w1); err != nil {
			t.Fatal(err)
		}
		if h, err = ops.ReLU(h); err != nil {
			t.Fatal(err)
		}
		if s.noise > 0 {
			if h, err = newNoise(g, h, s.noise); err != nil {
				t.Fatal(err)
			}
		}
		width = s.hidden
	}
	w2 := g.NewParam("w2", []int{width, s.out}, graph.HeNormal(), false)
	logits, err := gorgonia.Mul(h, w2)
	if err != nil {
		t.Fatal(err)
	}
	if s.bias {
		b := g.NewParam("b", []int{s.out}, func(*rand.Rand, []int, *tensor.Dense) {}, true)
		if logits, err = gorgonia.BroadcastAdd(logits, b, nil, []byte{0}); err != nil {
			t.Fatal(err)
		}
	}
	loss, err := newCE(logits, y)
	if err != nil {
		t.Fatal(err)
	}
	g.SetOutput("logits", logits)
	g.SetOutput("loss", loss)
	p, err := graph.Compile(g, "loss")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// blobs is a synthetic classification set: class c is a Gaussian around a
// random centre. Order and the noise of each epoch depend only on (seed, epoch).
type blobs struct {
	x        [][]float64
	y        []int
	seed     uint64
	batch    int
	dropLast bool
}

func newBlobs(n, dim, classes int, seed uint64, batch int, dropLast bool) *blobs {
	r := rand.New(rand.NewPCG(seed, 1))
	centres := make([][]float64, classes)
	for c := range centres {
		centres[c] = make([]float64, dim)
		for j := range centres[c] {
			centres[c][j] = 2 * r.NormFloat64()
		}
	}
	b := &blobs{seed: seed, batch: batch, dropLast: dropLast}
	for i := 0; i < n; i++ {
		c := i % classes
		v := make([]float64, dim)
		for j := range v {
			v[j] = centres[c][j] + r.NormFloat64()
		}
		b.x = append(b.x, v)
		b.y = append(b.y, c)
	}
	return b
}

func (b *blobs) Size() int {
	if b.dropLast {
		return len(b.y) / b.batch * b.batch
	}
	return len(b.y)
}

type blobIter struct {
	b     *blobs
	order []int
	pos   int
}

func (b *blobs) Epoch(e int) *blobIter {
	order := rand.New(rand.NewPCG(b.seed, uint64(e)+100)).Perm(len(b.y))
	return &blobIter{b: b, order: order}
}

func (it *blobIter) Next(x, y *tensor.Dense) (int, bool, error) {
	b := it.b
	left := len(it.order) - it.pos
	if left <= 0 || (b.dropLast && left < b.batch) {
		return 0, false, nil
	}
	n := min(left, b.batch)
	dim := len(b.x[0])
	ys := y.Ints()
	for i := 0; i < n; i++ {
		k := it.order[it.pos+i]
		ys[i] = b.y[k]
		switch x.Dtype() {
		case tensor.Float32:
			for j, v := range b.x[k] {
				x.Float32s()[i*dim+j] = float32(v)
			}
		default:
			copy(x.Float64s()[i*dim:], b.x[k])
		}
	}
	it.pos += n
	return n, true, nil
}

func (it *blobIter) Close() {}

// paramsBits returns every parameter's values as float64 bits, by name.
func paramsBits(g *graph.Graph) map[string][]uint64 {
	out := map[string][]uint64{}
	for _, p := range g.Params() {
		w := p.Node.Value().(*tensor.Dense)
		var bits []uint64
		if w.Dtype() == tensor.Float32 {
			for _, v := range w.Float32s() {
				bits = append(bits, uint64(math.Float32bits(v)))
			}
		} else {
			for _, v := range w.Float64s() {
				bits = append(bits, math.Float64bits(v))
			}
		}
		out[p.Name] = bits
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
