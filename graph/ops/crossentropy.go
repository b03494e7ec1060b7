package ops

import (
	"fmt"
	"github.com/eraserelu/eraserelu/graph/ops/cpu"
	"hash"
	"math"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// CrossEntropyOp is softmax followed by the negative log-likelihood of the
// integer labels, averaged over the batch, as one node: logits (N, K) of a
// float dtype and labels (N) of dtype tensor.Int give a scalar of the logits
// dtype. It is computed with the log-sum-exp shift, so large logits do not
// overflow. The gradient with respect to the logits is
// (softmax - onehot(labels)) / N; the labels get none.
//
// The op keeps the classification metrics of its last forward: Count rows,
// of which Correct(k) have their label among the k largest logits.
type CrossEntropyOp struct {
	noCommon
	id uint64

	// private state of the last forward
	loss64  gorgonia.F64
	loss32  gorgonia.F32
	p32     []float32 // softmax, read by the backward op
	p64     []float64
	rowLoss []float64
	ranks   []int // per row: how many classes rank before the label
	rows    int
	valid   int // rows with a label
	classes int
}

// SoftmaxCrossEntropy returns the mean cross-entropy of logits (N, K)
// against labels (N, dtype tensor.Int, values in [0, K)), and the op, whose
// Correct and Count report the accuracy of the last forward.
func SoftmaxCrossEntropy(logits, labels *gorgonia.Node) (*gorgonia.Node, *CrossEntropyOp, error) {
	ls, ys := logits.Shape(), labels.Shape()
	if len(ls) != 2 {
		return nil, nil, fmt.Errorf("ops.SoftmaxCrossEntropy: logits have shape %v, want (N, K)", ls)
	}
	if len(ys) != 1 || ys[0] != ls[0] {
		return nil, nil, fmt.Errorf("ops.SoftmaxCrossEntropy: labels have shape %v, want (%d) for logits of shape %v", ys, ls[0], ls)
	}
	if dt := labels.Dtype(); dt != tensor.Int {
		return nil, nil, fmt.Errorf("ops.SoftmaxCrossEntropy: labels have dtype %v, want %v", dt, tensor.Int)
	}
	op := &CrossEntropyOp{id: nextID()}
	n, err := gorgonia.ApplyOp(op, logits, labels)
	if err != nil {
		return nil, nil, fmt.Errorf("ops.SoftmaxCrossEntropy: %w", err)
	}
	return n, op, nil
}

// IsCrossEntropy reports whether n is a softmax cross-entropy node of this library.
func IsCrossEntropy(n *gorgonia.Node) bool {
	_, ok := n.Op().(*CrossEntropyOp)
	return ok
}

// IgnoreLabel marks a row that takes no part in the loss, its gradient or
// the metrics: the padding of a short last batch.
const IgnoreLabel = -1

// Count is the number of labelled rows (label != IgnoreLabel) of the last forward.
func (op *CrossEntropyOp) Count() int { return op.valid }

// Correct is the number of rows of the last forward whose label is among
// the k largest logits, ties going to the lower class index (k = 1: the
// top-1 hits, k = 5: top-5).
func (op *CrossEntropyOp) Correct(k int) int {
	c := 0
	for _, r := range op.ranks[:op.rows] {
		if r < k {
			c++
		}
	}
	return c
}

// Loss is the value of the last forward.
func (op *CrossEntropyOp) Loss() float64 { return float64(op.loss64) }

func (op *CrossEntropyOp) Arity() int { return 2 }

// Type is Tensor-2 a → Tensor-1 Int → a.
func (op *CrossEntropyOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return fnType(tensorType(2, a), gorgonia.TensorType{Dims: 1, Of: tensor.Int}, a)
}
func (op *CrossEntropyOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	return tensor.ScalarShape(), nil
}
func (op *CrossEntropyOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "SoftmaxCrossEntropy#%d", op.id) }
func (op *CrossEntropyOp) Hashcode() uint32      { return hashOf(op) }
func (op *CrossEntropyOp) String() string        { return "SoftmaxCrossEntropy" }

// ceArgs checks logits (N, K) and labels (N) of dtype Int.
func ceArgs(name string, vs []gorgonia.Value, arity int) (logits *tensor.Dense, labels []int, err error) {
	if err = argCount(name, arity, vs); err != nil {
		return
	}
	if logits, err = argDense(name, 0, vs[0]); err != nil {
		return
	}
	s := logits.Shape()
	if len(s) != 2 || s[1] == 0 {
		err = fmt.Errorf("%s: logits have shape %v, want (N, K) with K > 0", name, s)
		return
	}
	l, ok := vs[1].(*tensor.Dense)
	if !ok {
		err = fmt.Errorf("%s input 1: expected *tensor.Dense of labels, got %T", name, vs[1])
		return
	}
	if l.Dtype() != tensor.Int {
		err = fmt.Errorf("%s input 1: labels have dtype %v, want %v", name, l.Dtype(), tensor.Int)
		return
	}
	if ls := l.Shape(); l.RequiresIterator() || ls.TotalSize() != s[0] || (len(ls) > 1) {
		err = fmt.Errorf("%s input 1: labels have shape %v, want (%d)", name, ls, s[0])
		return
	}
	labels = l.Ints()
	return
}

func (op *CrossEntropyOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "SoftmaxCrossEntropy"
	logits, labels, err := ceArgs(name, vs, 2)
	if err != nil {
		return nil, err
	}
	n, k := logits.Shape()[0], logits.Shape()[1]
	valid := 0
	for i, l := range labels {
		if l == IgnoreLabel {
			continue
		}
		if l < 0 || l >= k {
			return nil, fmt.Errorf("%s: label %d of row %d is outside [0, %d) (or %d for an ignored row)", name, l, i, k, IgnoreLabel)
		}
		valid++
	}
	op.rows, op.classes, op.valid = n, k, valid
	op.rowLoss = normGrow(op.rowLoss, n)
	op.ranks = normGrow(op.ranks, n)
	if logits.Dtype() == tensor.Float32 {
		op.p32 = normGrow(op.p32, n*k)
		ceForward(ceFwdArgs[float32]{z: logits.Float32s(), p: op.p32, labels: labels, loss: op.rowLoss, ranks: op.ranks, k: k})
	} else {
		op.p64 = normGrow(op.p64, n*k)
		ceForward(ceFwdArgs[float64]{z: logits.Float64s(), p: op.p64, labels: labels, loss: op.rowLoss, ranks: op.ranks, k: k})
	}
	var sum float64
	for _, l := range op.rowLoss {
		sum += l
	}
	mean := 0.0
	if valid > 0 {
		mean = sum / float64(valid)
	}
	op.loss64 = gorgonia.F64(mean)
	if logits.Dtype() == tensor.Float32 {
		op.loss32 = gorgonia.F32(mean)
		return &op.loss32, nil
	}
	return &op.loss64, nil
}

type ceFwdArgs[T Float] struct {
	z, p   []T
	labels []int
	loss   []float64
	ranks  []int
	k      int
}

func ceForward[T Float](a ceFwdArgs[T]) {
	n := len(a.labels)
	if normSerial(n, 8*a.k) { // exp is costly: weigh each logit as 8 elements
		a.run(0, n)
		return
	}
	cpu.ParallelItems(n, 8*a.k, a.run)
}

// run handles rows [lo, hi): the loss lse(z) - z[label] with the max shift,
// the softmax, and the rank of the label.
func (a ceFwdArgs[T]) run(lo, hi int) {
	k := a.k
	for r := lo; r < hi; r++ {
		z, p := a.z[r*k:(r+1)*k], a.p[r*k:(r+1)*k]
		l := a.labels[r]
		if l == IgnoreLabel {
			a.loss[r], a.ranks[r] = 0, math.MaxInt
			continue
		}
		m := z[0]
		for _, v := range z[1:] {
			if v > m {
				m = v
			}
		}
		zl := z[l]
		mf := float64(m)
		var s float64
		rank := 0
		for j, v := range z {
			e := math.Exp(float64(v) - mf)
			p[j] = T(e)
			s += e
			if v > zl || (v == zl && j < l) {
				rank++
			}
		}
		inv := 1 / s
		for j := range p {
			p[j] = T(float64(p[j]) * inv)
		}
		a.loss[r] = mf + math.Log(s) - float64(zl)
		a.ranks[r] = rank
	}
}

func (op *CrossEntropyOp) DiffWRT(int) []bool { return []bool{true, false} }

func (op *CrossEntropyOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if len(inputs) != 2 {
		return nil, fmt.Errorf("SoftmaxCrossEntropy backward: expected 2 inputs, got %d", len(inputs))
	}
	dz, err := gorgonia.ApplyOp(&ceBackwardOp{fwd: op, id: nextID()}, inputs[0], inputs[1], output, grad)
	if err != nil {
		return nil, fmt.Errorf("SoftmaxCrossEntropy backward: %w", err)
	}
	return gorgonia.Nodes{dz, nil}, nil
}

// ceBackwardOp computes dlogits = (softmax - onehot) * dloss / N from the
// logits (for the shape), labels, the loss (read only to order it after
// the forward, whose softmax it reuses) and dloss.
type ceBackwardOp struct {
	noCommon
	nonDiff
	fwd *CrossEntropyOp
	id  uint64
	outBuf
}

func (op *ceBackwardOp) Arity() int { return 4 }
func (op *ceBackwardOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	t := tensorType(2, a)
	return fnType(t, gorgonia.TensorType{Dims: 1, Of: tensor.Int}, a, a, t)
}
func (op *ceBackwardOp) InferShape(in ...gorgonia.DimSizer) (tensor.Shape, error) {
	return clonedShape(in[0])
}
func (op *ceBackwardOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "SoftmaxCrossEntropyBackward#%d", op.id)
}
func (op *ceBackwardOp) Hashcode() uint32 { return hashOf(op) }
func (op *ceBackwardOp) String() string   { return "SoftmaxCrossEntropyBackward" }

func (op *ceBackwardOp) Do(vs ...gorgonia.Value) (gorgonia.Value, error) {
	const name = "SoftmaxCrossEntropyBackward"
	logits, labels, err := ceArgs(name, vs, 4)
	if err != nil {
		return nil, err
	}
	dl, err := normScalar(name, 3, vs[3])
	if err != nil {
		return nil, err
	}
	f := op.fwd
	n, k := logits.Shape()[0], logits.Shape()[1]
	if n != f.rows || k != f.classes {
		return nil, fmt.Errorf("%s: the forward pass has not run for logits of shape %v", name, logits.Shape())
	}
	dz := op.out.get(logits.Dtype(), logits.Shape()...)
	scale := 0.0
	if f.valid > 0 {
		scale = dl / float64(f.valid)
	}
	if logits.Dtype() == tensor.Float32 {
		if len(f.p32) != n*k {
			return nil, fmt.Errorf("%s: no float32 forward state", name)
		}
		ceBackward(dz.Float32s(), f.p32, labels, k, float32(scale))
	} else {
		if len(f.p64) != n*k {
			return nil, fmt.Errorf("%s: no float64 forward state", name)
		}
		ceBackward(dz.Float64s(), f.p64, labels, k, scale)
	}
	return dz, nil
}

func ceBackward[T Float](dz, p []T, labels []int, k int, scale T) {
	for r, l := range labels {
		row, pr := dz[r*k:(r+1)*k], p[r*k:(r+1)*k]
		if l == IgnoreLabel {
			clear(row)
			continue
		}
		for j, v := range pr {
			row[j] = v * scale
		}
		row[l] -= scale
	}
}
