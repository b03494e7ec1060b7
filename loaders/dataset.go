package loaders

import (
	"fmt"
	"math"
	"slices"
)

// Dataset is a labelled image set held in memory or decoded on demand.
//
// Every image has the same shape. Implementations in this package are safe
// for concurrent use by multiple goroutines.
type Dataset interface {
	// Len is the number of images.
	Len() int
	// NumClasses is the number of classes; labels are in [0, NumClasses).
	NumClasses() int
	// ClassNames returns the class names, indexed by label. The caller may
	// modify the returned slice.
	ClassNames() []string
	// Shape is the shape Image writes (after any fixed resize).
	Shape() (c, h, w int)
	// Label returns the label of image i (0 <= i < Len).
	Label(i int) int
	// Image writes image i as uint8 CHW into dst (len c*h*w).
	Image(i int, dst []uint8) error
}

// memDataset is a Dataset held in memory as one uint8 CHW array.
type memDataset struct {
	name    string // source, for error messages
	c, h, w int
	pix     []uint8 // Len()*c*h*w
	labels  []int32
	classes []string
}

func (d *memDataset) Len() int               { return len(d.labels) }
func (d *memDataset) NumClasses() int        { return len(d.classes) }
func (d *memDataset) ClassNames() []string   { return slices.Clone(d.classes) }
func (d *memDataset) Shape() (int, int, int) { return d.c, d.h, d.w }
func (d *memDataset) Label(i int) int        { return int(d.labels[i]) }

func (d *memDataset) Image(i int, dst []uint8) error {
	if i < 0 || i >= len(d.labels) {
		return fmt.Errorf("%s: image %d out of range [0,%d)", d.name, i, len(d.labels))
	}
	sz := d.c * d.h * d.w
	if len(dst) != sz {
		return fmt.Errorf("%s: destination has %d bytes, want %d", d.name, len(dst), sz)
	}
	copy(dst, d.pix[i*sz:(i+1)*sz])
	return nil
}

// subset is a view of a Dataset through a list of indices.
type subset struct {
	ds  Dataset
	idx []int
}

func (s *subset) Len() int                       { return len(s.idx) }
func (s *subset) NumClasses() int                { return s.ds.NumClasses() }
func (s *subset) ClassNames() []string           { return s.ds.ClassNames() }
func (s *subset) Shape() (int, int, int)         { return s.ds.Shape() }
func (s *subset) Label(i int) int                { return s.ds.Label(s.idx[i]) }
func (s *subset) Image(i int, dst []uint8) error { return s.ds.Image(s.idx[i], dst) }

// Subset returns the images of ds at the given indices, in that order
// (indices may repeat). The slice is copied. Subset panics if an index is out
// of range, like a slice index. A subset of a subset refers to the
// underlying data set directly.
func Subset(ds Dataset, idx []int) Dataset {
	n := ds.Len()
	for _, i := range idx {
		if i < 0 || i >= n {
			panic(fmt.Sprintf("loaders.Subset: index %d out of range [0,%d)", i, n))
		}
	}
	if s, ok := ds.(*subset); ok {
		comp := make([]int, len(idx))
		for k, i := range idx {
			comp[k] = s.idx[i]
		}
		return &subset{ds: s.ds, idx: comp}
	}
	return &subset{ds: ds, idx: slices.Clone(idx)}
}

// classIndices lists, for each class, the indices of its images in order.
func classIndices(ds Dataset) [][]int {
	k := ds.NumClasses()
	per := make([][]int, k)
	for i := range ds.Len() {
		l := ds.Label(i)
		if l < 0 || l >= k {
			panic(fmt.Sprintf("loaders: image %d has label %d outside [0,%d)", i, l, k))
		}
		per[l] = append(per[l], i)
	}
	return per
}

// FirstPerClass returns the first k images of every class, in the original
// order. A class with fewer than k images contributes all of them.
func FirstPerClass(ds Dataset, k int) Dataset {
	k = max(k, 0)
	var idx []int
	count := make([]int, ds.NumClasses())
	for i := range ds.Len() {
		l := ds.Label(i)
		if l >= 0 && l < len(count) && count[l] < k {
			count[l]++
			idx = append(idx, i)
		}
	}
	return Subset(ds, idx)
}

// fracCount is the number of images kept from a class of n images at
// fraction frac: round(frac*n), at least one when frac > 0 and n > 0. It is
// non-decreasing in frac.
func fracCount(frac float64, n int) int {
	if !(frac > 0) || n == 0 {
		return 0
	}
	if frac >= 1 {
		return n
	}
	return min(n, max(1, int(math.Round(frac*float64(n)))))
}

// RandomFraction returns a seeded random sample of a fraction frac (clamped
// to [0, 1]) of every class (stratified: round(frac*n) images of a class of n,
// at least one), in the original order. For a fixed seed the samples are
// nested: the images chosen for a smaller fraction are a subset of those
// chosen for a larger one (ImageNet-10% ⊂ 20% ⊂ 30% in the paper).
func RandomFraction(ds Dataset, frac float64, seed uint64) Dataset {
	var idx []int
	for c, members := range classIndices(ds) {
		p := slices.Clone(members)
		shuffleInts(newRand(seed, domainFraction, uint64(c), 0), p)
		idx = append(idx, p[:fracCount(frac, len(p))]...)
	}
	slices.Sort(idx)
	return Subset(ds, idx)
}

// Split divides ds into a training and a validation part, stratified by
// class: round(valFrac*n) images of each class of n (valFrac clamped to
// [0, 1], at least one when valFrac > 0) go to validation, chosen with the
// seed; the rest go to training. Both parts keep the original order and are
// disjoint; together they are ds.
func Split(ds Dataset, valFrac float64, seed uint64) (train, val Dataset) {
	var tr, va []int
	for c, members := range classIndices(ds) {
		p := slices.Clone(members)
		shuffleInts(newRand(seed, domainSplit, uint64(c), 0), p)
		k := fracCount(valFrac, len(p))
		va = append(va, p[:k]...)
		tr = append(tr, p[k:]...)
	}
	slices.Sort(tr)
	slices.Sort(va)
	return Subset(ds, tr), Subset(ds, va)
}
