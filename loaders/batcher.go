package loaders

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"

	"gorgonia.org/tensor"
)

// BatcherConfig configures a [Batcher].
type BatcherConfig struct {
	// Batch is the number of images per batch (> 0).
	Batch int
	// Shuffle visits the images of each epoch in a random order derived
	// from Seed and the epoch number; otherwise in index order.
	Shuffle bool
	// Seed drives the order and the augmentation.
	Seed uint64
	// Workers is the number of goroutines that decode and augment
	// (0: GOMAXPROCS). It does not change the batches.
	Workers int
	// Prefetch is the number of batches prepared ahead of the consumer,
	// i.e. the number of batch buffers (0: twice the workers, at least 2).
	Prefetch int
	// DropLast drops the last batch of an epoch when it is short.
	DropLast bool
	// Normalize maps uint8 pixels to the values written into batches.
	Normalize Normalize
	// Augment transforms each image before normalisation (nil: none).
	Augment Augment
}

// Batcher turns a Dataset into batches of normalised, augmented images.
//
// The batches of epoch e depend only on the data set, the configuration,
// the seed and e: image order is a permutation seeded by (Seed, e), and the
// augmentation of image i in epoch e draws from a generator seeded by
// (Seed, e, i). The number of workers and the timing of goroutines do not
// matter, so a resumed run sees exactly the same data.
//
// A Batcher runs one epoch at a time and is not safe for concurrent use.
type Batcher struct {
	ds         Dataset
	cfg        BatcherConfig
	c, h, w    int // data set shape
	oc, oh, ow int // batch image shape
	t32        [][256]float32
	t64        [][256]float64
	slots      []batchSlot
	scratch    [][]uint8 // per worker: the image before augmentation
	order      []int
	cur        *EpochIter
}

// batchSlot is one batch buffer, filled by a worker and read by Next.
type batchSlot struct {
	pix    []uint8 // Batch * oc*oh*ow, augmented, not normalised
	labels []int
	n      int
	err    error
}

// NewBatcher checks the configuration against the data set and allocates
// the batch buffers.
func NewBatcher(ds Dataset, cfg BatcherConfig) (*Batcher, error) {
	if ds == nil {
		return nil, errors.New("loaders: NewBatcher: nil data set")
	}
	n := ds.Len()
	switch {
	case n == 0:
		return nil, errors.New("loaders: NewBatcher: empty data set")
	case cfg.Batch <= 0:
		return nil, fmt.Errorf("loaders: NewBatcher: batch size %d", cfg.Batch)
	case cfg.Workers < 0 || cfg.Prefetch < 0:
		return nil, fmt.Errorf("loaders: NewBatcher: %d workers, prefetch %d", cfg.Workers, cfg.Prefetch)
	case cfg.DropLast && n < cfg.Batch:
		return nil, fmt.Errorf("loaders: NewBatcher: DropLast with %d images and batch size %d leaves no batch", n, cfg.Batch)
	}
	if cfg.Workers == 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Prefetch == 0 {
		cfg.Prefetch = max(2, 2*cfg.Workers)
	}
	b := &Batcher{ds: ds, cfg: cfg}
	b.c, b.h, b.w = ds.Shape()
	if b.c <= 0 || b.h <= 0 || b.w <= 0 {
		return nil, fmt.Errorf("loaders: NewBatcher: data set shape (%d, %d, %d)", b.c, b.h, b.w)
	}
	b.oc, b.oh, b.ow = b.c, b.h, b.w
	if cfg.Augment != nil {
		b.oc, b.oh, b.ow = cfg.Augment.OutShape(b.c, b.h, b.w)
		if b.oc <= 0 || b.oh <= 0 || b.ow <= 0 {
			return nil, fmt.Errorf("loaders: NewBatcher: augmentation %T gives shape (%d, %d, %d)", cfg.Augment, b.oc, b.oh, b.ow)
		}
	}
	t, err := cfg.Normalize.table(b.oc)
	if err != nil {
		return nil, fmt.Errorf("loaders: NewBatcher: %w", err)
	}
	b.t64 = t
	b.t32 = make([][256]float32, len(t))
	for ch := range t {
		for u := range 256 {
			b.t32[ch][u] = float32(t[ch][u])
		}
	}
	osz := b.oc * b.oh * b.ow
	b.slots = make([]batchSlot, cfg.Prefetch)
	for i := range b.slots {
		b.slots[i] = batchSlot{pix: make([]uint8, cfg.Batch*osz), labels: make([]int, cfg.Batch)}
	}
	if cfg.Augment != nil {
		b.scratch = make([][]uint8, cfg.Workers)
		for i := range b.scratch {
			b.scratch[i] = make([]uint8, b.c*b.h*b.w)
		}
	}
	b.order = make([]int, n)
	return b, nil
}

// OutShape is the shape of one image in a batch: x has shape
// (Batch, c, h, w).
func (b *Batcher) OutShape() (c, h, w int) { return b.oc, b.oh, b.ow }

// Batches is the number of batches in an epoch.
func (b *Batcher) Batches() int {
	n := b.ds.Len()
	if b.cfg.DropLast {
		return n / b.cfg.Batch
	}
	return (n + b.cfg.Batch - 1) / b.cfg.Batch
}

// NewTensors allocates an input tensor x of shape (Batch, c, h, w) and
// dtype dt (tensor.Float32 or tensor.Float64) and a label tensor y of shape
// (Batch) and dtype tensor.Int, for Next.
func (b *Batcher) NewTensors(dt tensor.Dtype) (x, y *tensor.Dense) {
	x = tensor.New(tensor.WithShape(b.cfg.Batch, b.oc, b.oh, b.ow), tensor.Of(dt))
	y = tensor.New(tensor.WithShape(b.cfg.Batch), tensor.Of(tensor.Int))
	return x, y
}

// EpochIter delivers the batches of one epoch, in order.
type EpochIter struct {
	b         *Batcher
	epoch     int
	nb        int // batches in the epoch
	k         int // next batch to deliver
	free      []chan struct{}
	ready     []chan struct{}
	jobs      chan int
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closed    bool
	err       error
}

// Epoch starts epoch e: its order and augmentation randomness derive from
// Seed and e only, so a resumed run sees exactly the same data. Workers start
// preparing batches at once. Starting an epoch closes the Batcher's previous
// EpochIter. The goroutines stop at the end of the epoch, at the first error,
// or on Close.
func (b *Batcher) Epoch(e int) *EpochIter {
	if b.cur != nil {
		b.cur.Close()
	}
	for i := range b.order {
		b.order[i] = i
	}
	if b.cfg.Shuffle {
		shuffleInts(newRand(b.cfg.Seed, domainShuffle, uint64(e), 0), b.order)
	}
	p := len(b.slots)
	it := &EpochIter{
		b: b, epoch: e, nb: b.Batches(),
		free:  make([]chan struct{}, p),
		ready: make([]chan struct{}, p),
		jobs:  make(chan int),
		done:  make(chan struct{}),
	}
	for s := range p {
		it.free[s] = make(chan struct{}, 1)
		it.ready[s] = make(chan struct{}, 1)
		it.free[s] <- struct{}{}
	}
	it.wg.Add(1 + b.cfg.Workers)
	go it.dispatch()
	for w := range b.cfg.Workers {
		go it.work(w)
	}
	b.cur = it
	return it
}

// dispatch hands out batch numbers in order, each once its buffer is free.
func (it *EpochIter) dispatch() {
	defer it.wg.Done()
	defer close(it.jobs)
	p := len(it.free)
	for k := range it.nb {
		select {
		case <-it.free[k%p]:
		case <-it.done:
			return
		}
		select {
		case it.jobs <- k:
		case <-it.done:
			return
		}
	}
}

// work fills the buffers of the batches it receives.
func (it *EpochIter) work(wid int) {
	defer it.wg.Done()
	b := it.b
	cfg := &b.cfg
	var scratch []uint8
	if b.scratch != nil {
		scratch = b.scratch[wid]
	}
	src := &splitMix{}
	r := rand.New(src)
	osz := b.oc * b.oh * b.ow
	n := len(b.order)
	for {
		var k int
		var ok bool
		select {
		case k, ok = <-it.jobs:
			if !ok {
				return
			}
		case <-it.done:
			return
		}
		s := &b.slots[k%len(b.slots)]
		start := k * cfg.Batch
		s.n = min(cfg.Batch, n-start)
		s.err = nil
		for row := range s.n {
			if row&15 == 15 {
				select {
				case <-it.done:
					return
				default:
				}
			}
			idx := b.order[start+row]
			s.labels[row] = b.ds.Label(idx)
			out := s.pix[row*osz : (row+1)*osz]
			if cfg.Augment == nil {
				if err := b.ds.Image(idx, out); err != nil {
					s.err = fmt.Errorf("loaders: epoch %d, batch %d: %w", it.epoch, k, err)
					break
				}
				continue
			}
			if err := b.ds.Image(idx, scratch); err != nil {
				s.err = fmt.Errorf("loaders: epoch %d, batch %d: %w", it.epoch, k, err)
				break
			}
			src.s = seedOf(cfg.Seed, domainAugment, uint64(it.epoch), uint64(idx))
			cfg.Augment.Apply(out, scratch, b.c, b.h, b.w, r)
		}
		it.ready[k%len(b.slots)] <- struct{}{}
	}
}

// check validates the tensors Next fills.
func (b *Batcher) check(x, y *tensor.Dense) error {
	if x == nil || y == nil {
		return errors.New("loaders: Next: nil tensor")
	}
	bs := b.cfg.Batch
	xs := x.Shape()
	// Rows may be laid out as (C, H, W) or flattened (C*H*W, for an MLP).
	if len(xs) < 2 || xs[0] != bs || xs.TotalSize() != bs*b.oc*b.oh*b.ow {
		return fmt.Errorf("loaders: Next: x has shape %v, want (%d, %d, %d, %d) or (%d, %d)", xs, bs, b.oc, b.oh, b.ow, bs, b.oc*b.oh*b.ow)
	}
	if x.IsMaterializable() {
		return errors.New("loaders: Next: x is a view or transposed; pass a contiguous tensor")
	}
	want := bs * b.oc * b.oh * b.ow
	switch x.Dtype() {
	case tensor.Float32:
		if len(x.Float32s()) != want {
			return fmt.Errorf("loaders: Next: x holds %d values, want %d", len(x.Float32s()), want)
		}
	case tensor.Float64:
		if len(x.Float64s()) != want {
			return fmt.Errorf("loaders: Next: x holds %d values, want %d", len(x.Float64s()), want)
		}
	default:
		return fmt.Errorf("loaders: Next: x has dtype %v, want float32 or float64", x.Dtype())
	}
	if y.Dtype() != tensor.Int {
		return fmt.Errorf("loaders: Next: y has dtype %v, want int", y.Dtype())
	}
	if ys := y.Shape(); len(ys) != 1 || ys[0] != bs || y.IsMaterializable() || len(y.Ints()) != bs {
		return fmt.Errorf("loaders: Next: y has shape %v, want (%d)", ys, bs)
	}
	return nil
}

// Next fills x (shape (Batch, C, H, W), or (Batch, C*H*W) for a network
// that takes flat rows; dtype Float32 or Float64) and y
// (shape (Batch), dtype Int) in place with the next batch, without
// allocating. It returns the number of valid rows (the last batch may be
// short when DropLast is false; rows beyond n are set to zero), and false at
// the end of the epoch or after Close. After an error (a bad image, or
// tensors of the wrong shape or dtype, which leave the iterator where it
// was) ok is false.
func (it *EpochIter) Next(x, y *tensor.Dense) (n int, ok bool, err error) {
	if it.err != nil {
		return 0, false, it.err
	}
	if it.closed || it.k >= it.nb {
		it.Close()
		return 0, false, nil
	}
	b := it.b
	if err := b.check(x, y); err != nil {
		return 0, false, err
	}
	s := it.k % len(b.slots)
	<-it.ready[s]
	sl := &b.slots[s]
	if sl.err != nil {
		it.err = sl.err
		it.Close()
		return 0, false, it.err
	}
	n = sl.n
	hw := b.oh * b.ow
	switch x.Dtype() {
	case tensor.Float32:
		normalizeRows(x.Float32s(), b.t32, sl.pix, n, hw)
	case tensor.Float64:
		normalizeRows(x.Float64s(), b.t64, sl.pix, n, hw)
	}
	ys := y.Ints()
	copy(ys, sl.labels[:n])
	clear(ys[n:])
	it.free[s] <- struct{}{}
	it.k++
	return n, true, nil
}

// Close stops the workers and waits for them. It is safe to call more than
// once; Next returns false afterwards.
func (it *EpochIter) Close() {
	it.closeOnce.Do(func() {
		close(it.done)
		it.wg.Wait()
	})
	it.closed = true
}

// normalizeRows writes the first n images of pix (uint8, CHW per row) into
// xs through each channel's lookup table and zeroes the rows after them.
func normalizeRows[T float32 | float64](xs []T, tables [][256]T, pix []uint8, n, hw int) {
	osz := len(tables) * hw
	for row := range n {
		for ch := range tables {
			t := &tables[ch]
			off := row*osz + ch*hw
			dst := xs[off : off+hw]
			for i, v := range pix[off : off+hw] {
				dst[i] = t[v]
			}
		}
	}
	clear(xs[n*osz:])
}
