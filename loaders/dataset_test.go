package loaders

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// unbalanced returns a data set whose class k has 10*(k+1) images,
// interleaved.
func unbalanced() *memDataset {
	var labels []int32
	for round := 0; len(labels) < 150; round++ {
		for k := range 5 {
			if round < 10*(k+1) {
				labels = append(labels, int32(k))
			}
		}
	}
	ds := memData(len(labels), 1, 2, 2, 5)
	ds.labels = labels
	return ds
}

func indicesOf(t *testing.T, ds Dataset) []int {
	t.Helper()
	s, ok := ds.(*subset)
	if !ok {
		t.Fatalf("%T is not a subset", ds)
	}
	return s.idx
}

func TestSubset(t *testing.T) {
	ds := memData(20, 1, 2, 2, 4)
	s := Subset(ds, []int{5, 3, 3, 19})
	if s.Len() != 4 || s.Label(0) != 1 || s.Label(3) != 3 || s.NumClasses() != 4 {
		t.Fatalf("Subset: len %d labels %d %d", s.Len(), s.Label(0), s.Label(3))
	}
	a, b := make([]uint8, 4), make([]uint8, 4)
	s.Image(0, a)
	ds.Image(5, b)
	if !bytes.Equal(a, b) {
		t.Fatal("Subset image differs")
	}
	ss := Subset(s, []int{3, 0})
	if got := indicesOf(t, ss); !slices.Equal(got, []int{19, 5}) {
		t.Fatalf("subset of subset: %v", got)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "out of range") {
			t.Fatalf("Subset out of range: %v", r)
		}
	}()
	Subset(ds, []int{20})
}

func TestFirstPerClass(t *testing.T) {
	ds := unbalanced()
	s := FirstPerClass(ds, 15)
	if got := countClasses(s); !slices.Equal(got, []int{10, 15, 15, 15, 15}) {
		t.Fatalf("per class %v", got)
	}
	idx := indicesOf(t, s)
	if !slices.IsSorted(idx) {
		t.Fatal("not in original order")
	}
	// They are the first ones of each class.
	seen := make([]int, 5)
	for i := range ds.Len() {
		l := ds.Label(i)
		seen[l]++
		if in := slices.Contains(idx, i); in != (seen[l] <= 15) {
			t.Fatalf("image %d (class %d, #%d) selected=%v", i, l, seen[l], in)
		}
	}
	if FirstPerClass(ds, 0).Len() != 0 {
		t.Fatal("k=0 not empty")
	}
}

func TestRandomFractionNested(t *testing.T) {
	ds := unbalanced()
	var prev []int
	for _, f := range []float64{0.1, 0.2, 0.3, 0.5, 1} {
		s := RandomFraction(ds, f, 7)
		idx := indicesOf(t, s)
		if !slices.IsSorted(idx) {
			t.Fatal("not sorted")
		}
		for k, n := range countClasses(s) {
			if want := fracCount(f, 10*(k+1)); n != want {
				t.Fatalf("frac %v class %d: %d images, want %d", f, k, n, want)
			}
		}
		for _, i := range prev {
			if !slices.Contains(idx, i) {
				t.Fatalf("frac %v does not contain image %d of the smaller fraction", f, i)
			}
		}
		prev = idx
	}
	if got := countClasses(RandomFraction(ds, 0.01, 7)); !slices.Equal(got, []int{1, 1, 1, 1, 1}) {
		t.Fatalf("tiny fraction keeps one per class: %v", got)
	}
	a, b := indicesOf(t, RandomFraction(ds, 0.3, 7)), indicesOf(t, RandomFraction(ds, 0.3, 7))
	c := indicesOf(t, RandomFraction(ds, 0.3, 8))
	if !slices.Equal(a, b) || slices.Equal(a, c) {
		t.Fatal("RandomFraction: same seed should agree, different seeds differ")
	}
}

func TestSplit(t *testing.T) {
	ds := unbalanced()
	tr, va := Split(ds, 0.2, 3)
	ti, vi := indicesOf(t, tr), indicesOf(t, va)
	all := slices.Sorted(slices.Values(append(slices.Clone(ti), vi...)))
	for i, v := range all {
		if v != i {
			t.Fatalf("train ∪ val is not the data set (or they overlap): %v", all)
		}
	}
	if got := countClasses(va); !slices.Equal(got, []int{2, 4, 6, 8, 10}) {
		t.Fatalf("val per class %v", got)
	}
	tr2, _ := Split(ds, 0.2, 3)
	_, va3 := Split(ds, 0.2, 4)
	if !slices.Equal(indicesOf(t, tr2), ti) || slices.Equal(indicesOf(t, va3), vi) {
		t.Fatal("Split: same seed should agree, different seeds differ")
	}
	if _, v := Split(ds, 0, 1); v.Len() != 0 {
		t.Fatal("valFrac 0 gives a validation set")
	}
}

func TestOpenUnknown(t *testing.T) {
	_, err := Open("cifar1000", "x", true)
	if err == nil {
		t.Fatal("no error")
	}
	for _, n := range DatasetNames() {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("error %q does not list %s", err, n)
		}
	}
}
