package loaders

import (
	"fmt"
	"math"
	"runtime"
	"sync"
)

// Stats describes one split of a data set.
type Stats struct {
	// Images is the number of images.
	Images int `json:"images"`
	// ClassNames and ClassCounts give the images per class, by label.
	ClassNames  []string `json:"class_names"`
	ClassCounts []int    `json:"class_counts"`
	// Mean and Std are the per-channel mean and (population) standard
	// deviation of the pixels, in [0, 1] units.
	Mean []float64 `json:"mean"`
	Std  []float64 `json:"std"`
}

// ComputeStats counts the images of ds per class and computes the
// per-channel pixel mean and standard deviation, decoding every image (in
// parallel; the sums are exact integers, so the result does not depend on
// the number of goroutines). An image that fails to decode is an error.
func ComputeStats(ds Dataset) (Stats, error) {
	st := Stats{Images: ds.Len(), ClassNames: ds.ClassNames(), ClassCounts: countClasses(ds)}
	c, h, w := ds.Shape()
	n := ds.Len()
	if n == 0 {
		return st, fmt.Errorf("loaders: ComputeStats: empty data set")
	}
	workers := max(1, min(runtime.GOMAXPROCS(0), n))
	sums := make([][]uint64, workers) // per worker: c sums then c sums of squares
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for k := range workers {
		wg.Go(func() {
			s := make([]uint64, 2*c)
			buf := make([]uint8, c*h*w)
			for i := k * n / workers; i < (k+1)*n/workers; i++ {
				if err := ds.Image(i, buf); err != nil {
					errs[k] = err
					return
				}
				for ch := range c {
					var sum, sq uint64
					for _, v := range buf[ch*h*w : (ch+1)*h*w] {
						sum += uint64(v)
						sq += uint64(v) * uint64(v)
					}
					s[ch] += sum
					s[c+ch] += sq
				}
			}
			sums[k] = s
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return st, err
		}
	}
	st.Mean = make([]float64, c)
	st.Std = make([]float64, c)
	px := float64(n) * float64(h*w)
	for ch := range c {
		var sum, sq uint64
		for _, s := range sums {
			sum += s[ch]
			sq += s[c+ch]
		}
		m := float64(sum) / px
		v := float64(sq)/px - m*m
		st.Mean[ch] = m / 255
		st.Std[ch] = math.Sqrt(max(v, 0)) / 255
	}
	return st, nil
}

// countClasses counts the images of each class (labels only, no decoding).
func countClasses(ds Dataset) []int {
	counts := make([]int, ds.NumClasses())
	for i := range ds.Len() {
		if l := ds.Label(i); l >= 0 && l < len(counts) {
			counts[l]++
		}
	}
	return counts
}

// Summary describes a data set for `eraserelu data stats`: image counts of
// both splits, per-class counts, and the channel statistics of the training
// split.
type Summary struct {
	Dataset       string    `json:"dataset"`
	Path          string    `json:"path"`
	Train         int       `json:"train"`
	Test          int       `json:"test"`
	Classes       int       `json:"classes"`
	ClassNames    []string  `json:"class_names"`
	TrainPerClass []int     `json:"train_per_class"`
	TestPerClass  []int     `json:"test_per_class"`
	Shape         [3]int    `json:"shape"`
	Mean          []float64 `json:"mean"`
	Std           []float64 `json:"std"`
}

// Summarize opens both splits of the data set name at path (as [Open] does)
// and describes them; the channel statistics are those of the training split.
func Summarize(name, path string) (Summary, error) {
	train, err := Open(name, path, true)
	if err != nil {
		return Summary{}, err
	}
	test, err := Open(name, path, false)
	if err != nil {
		return Summary{}, err
	}
	st, err := ComputeStats(train)
	if err != nil {
		return Summary{}, err
	}
	c, h, w := train.Shape()
	return Summary{
		Dataset: name, Path: path,
		Train: train.Len(), Test: test.Len(),
		Classes: train.NumClasses(), ClassNames: st.ClassNames,
		TrainPerClass: st.ClassCounts, TestPerClass: countClasses(test),
		Shape: [3]int{c, h, w},
		Mean:  st.Mean, Std: st.Std,
	}, nil
}
