// Package rng holds the counter-based random streams of the random ops
// (dropout, stochastic depth): the one definition both back ends draw from,
// the CPU ops of graph/ops and the device kernels of cuda (whose reference
// interpreter calls these functions, and whose ops.cu mirrors them), so a
// mask is the same on either.
//
// Draw number step of an op seeded with seed has the base counter
//
//	Base(seed, step) = Splitmix(Splitmix(seed) ^ Splitmix(step + 0x632be59bd9b4e019)).
//
// Dropout keeps element i iff the (i mod 2)-th 32-bit half of Pair(base,
// i/2) is at least DropThreshold(p); stochastic depth keeps the branch iff
// Survives(base, SurvivalThreshold(survival)). Being a hash of (seed, step,
// element), a mask is the same on any number of cores and resumes exactly
// from the step counter.
package rng

import "math"

// Splitmix is the SplitMix64 finaliser: a fast, well-mixed 64-bit hash,
// used as a counter-based generator (the same counter always gives the same
// number, so masks are reproducible and can be drawn in parallel).
func Splitmix(z uint64) uint64 {
	z += golden
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// golden is SplitMix64's increment, 2^64 divided by the golden ratio.
const golden = 0x9e3779b97f4a7c15

// Base is the base counter of draw number step of the stream seeded with seed.
func Base(seed, step uint64) uint64 {
	return Splitmix(Splitmix(seed) ^ Splitmix(step+0x632be59bd9b4e019))
}

// Pair is the 64-bit draw of elements 2j and 2j+1 (low and high half) for
// base counter base.
func Pair(base uint64, j int) uint64 { return Splitmix(base + uint64(j)*golden) }

// DropThreshold is dropout's integer form of the drop probability p:
// an element is kept iff its 32-bit draw is at least it, with probability
// 1-p up to 2^-32.
func DropThreshold(p float64) uint32 {
	return uint32(math.Min(math.Round(p*(1<<32)), math.MaxUint32))
}

// DropKeeps reports whether dropout keeps element i for base counter base.
func DropKeeps(base uint64, i int, thr uint32) bool {
	h := Pair(base, i/2)
	if i%2 == 1 {
		h >>= 32
	}
	return uint32(h) >= thr
}

// SurvivalThreshold is stochastic depth's integer form of the survival
// probability: with u = m/2^53 the uniform draw of m = base>>11 (an integer
// below 2^53, so u is exact), u < survival iff m < ceil(survival*2^53),
// because survival*2^53 is exact too. The device kernels take no float64,
// so both back ends use this integer test.
func SurvivalThreshold(survival float64) uint64 {
	return uint64(math.Ceil(survival * (1 << 53)))
}

// Survives reports whether the branch is kept for base counter base.
func Survives(base, thr uint64) bool { return base>>11 < thr }
