package train

import "gorgonia.org/tensor"

// Data is a source of mini-batches: one pass over it per epoch. The order
// of an epoch (shuffling, augmentation) must depend only on the source's
// seed and the epoch number e, never on what ran before, so that a resumed
// run sees the same batches as an uninterrupted one.
type Data interface {
	Epoch(e int) Batches
}

// Batches iterates over one epoch. Next writes the next batch into x (the
// images, of the graph input's shape) and y (the labels, tensor.Int) and
// returns the number of examples n in it; n may be less than the batch
// size in the last batch. ok is false when the epoch is over. The trainer
// sets the labels of rows n and beyond to -1, which the cross-entropy op
// ignores, and zeroes those rows of x.
type Batches interface {
	Next(x, y *tensor.Dense) (n int, ok bool, err error)
	Close()
}

// Sizer is implemented by data sources that know how many examples an
// epoch has; the progress bar and the ETA use it.
type Sizer interface {
	Size() int
}

// DataFunc adapts a function to Data.
type DataFunc func(e int) Batches

// Epoch calls f.
func (f DataFunc) Epoch(e int) Batches { return f(e) }

// FromEpochs adapts any source whose Epoch method returns a concrete
// iterator type (as the loaders' Batcher.Epoch returns *EpochIter) to Data:
//
//	d := train.FromEpochs(batcher)
//
// The result implements Sizer when src has a Size() int method.
func FromEpochs[I Batches](src interface{ Epoch(e int) I }) Data {
	a := epochAdapter[I]{src: src}
	if s, ok := src.(Sizer); ok {
		return sizedEpochAdapter[I]{a, s}
	}
	return a
}

type epochAdapter[I Batches] struct {
	src interface{ Epoch(e int) I }
}

func (a epochAdapter[I]) Epoch(e int) Batches { return a.src.Epoch(e) }

type sizedEpochAdapter[I Batches] struct {
	epochAdapter[I]
	Sizer
}

// WithSize attaches an epoch size (examples) to a data source.
func WithSize(d Data, examples int) Data {
	return sizedData{d, examples}
}

type sizedData struct {
	Data
	n int
}

func (s sizedData) Size() int { return s.n }

func sizeOf(d Data) int {
	if s, ok := d.(Sizer); ok {
		return s.Size()
	}
	return 0
}
