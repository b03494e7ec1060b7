package graph

import (
	"math"
	"math/rand/v2"

	"gorgonia.org/tensor"
)

// Init writes initial values of the given parameter shape into t.
type Init func(rng *rand.Rand, shape []int, t *tensor.Dense)

// fanIn is the number of inputs of one output unit: the product of all
// dimensions but the first (PyTorch's weight layout: out, in, kh, kw).
func fanIn(shape []int) int {
	n := 1
	for _, d := range shape[1:] {
		n *= d
	}
	return n
}

func fill(t *tensor.Dense, f func() float64) {
	switch d := t.Data().(type) {
	case []float32:
		for i := range d {
			d[i] = float32(f())
		}
	case []float64:
		for i := range d {
			d[i] = f()
		}
	}
}

// HeNormal is He et al.'s initialisation: N(0, 2/fan_in).
func HeNormal() Init {
	return func(rng *rand.Rand, shape []int, t *tensor.Dense) {
		std := math.Sqrt(2 / float64(fanIn(shape)))
		fill(t, func() float64 { return rng.NormFloat64() * std })
	}
}

// HeNormalFanOut is N(0, 2/fan_out) with fan_out = out*kh*kw, as
// torchvision and the CIFAR ResNet code initialise convolutions.
func HeNormalFanOut() Init {
	return func(rng *rand.Rand, shape []int, t *tensor.Dense) {
		fanOut := shape[0]
		for _, d := range shape[2:] {
			fanOut *= d
		}
		std := math.Sqrt(2 / float64(fanOut))
		fill(t, func() float64 { return rng.NormFloat64() * std })
	}
}

// Uniform draws from U(-bound, bound) with bound = 1/sqrt(fan_in), PyTorch's
// default for linear layers and biases (fanIn of the weight shape is passed as
// fan when initialising a bias).
func Uniform(fan int) Init {
	return func(rng *rand.Rand, shape []int, t *tensor.Dense) {
		f := fan
		if f == 0 {
			f = fanIn(shape)
		}
		b := 1 / math.Sqrt(float64(f))
		fill(t, func() float64 { return (2*rng.Float64() - 1) * b })
	}
}

// Constant fills with v.
func Constant(v float64) Init {
	return func(_ *rand.Rand, _ []int, t *tensor.Dense) { fill(t, func() float64 { return v }) }
}
