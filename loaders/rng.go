package loaders

import (
	"math/bits"
	"math/rand/v2"
)

// Random streams. Every random decision in this package is drawn from a
// splitmix64 generator whose state is a hash of the user's seed, a domain
// constant naming the purpose, and the indices the decision belongs to (epoch,
// image, class). The generator and the derived integers and floats are
// implemented here so that the streams do not change with the Go release.

const (
	domainShuffle  uint64 = 0x53485546464c4531 // epoch order
	domainAugment  uint64 = 0x4155474d454e5431 // per-image augmentation
	domainFraction uint64 = 0x4652414354494f4e // RandomFraction
	domainSplit    uint64 = 0x53504c4954564131 // Split
	domainSample   uint64 = 0x53414d504c453031 // samples in tests and stats
)

// splitMix is a splitmix64 generator; it implements rand.Source.
type splitMix struct{ s uint64 }

func (p *splitMix) Uint64() uint64 {
	p.s += 0x9e3779b97f4a7c15
	z := p.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// mix64 is the splitmix64 finaliser, a bijective 64-bit hash.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// seedOf combines a seed, a domain and two indices into one generator
// state.
func seedOf(seed, domain, a, b uint64) uint64 {
	h := mix64(seed ^ 0x243f6a8885a308d3)
	h = mix64(h ^ domain)
	h = mix64(h + 0x9e3779b97f4a7c15 ^ a)
	return mix64(h + 0x9e3779b97f4a7c15 ^ b)
}

// newRand returns a generator seeded from seedOf(seed, domain, a, b).
func newRand(seed, domain, a, b uint64) *rand.Rand {
	return rand.New(&splitMix{s: seedOf(seed, domain, a, b)})
}

// randN returns a uniform integer in [0, n) (n > 0) using Lemire's method;
// it depends only on r.Uint64, so it is stable across Go releases.
func randN(r *rand.Rand, n int) int {
	if n <= 1 {
		return 0
	}
	un := uint64(n)
	for {
		hi, lo := bits.Mul64(r.Uint64(), un)
		if lo < un {
			thresh := -un % un
			if lo < thresh {
				continue
			}
		}
		return int(hi)
	}
}

// randFloat returns a uniform float64 in [0, 1).
func randFloat(r *rand.Rand) float64 {
	return float64(r.Uint64()>>11) * 0x1p-53
}

// randBool returns true with probability 1/2.
func randBool(r *rand.Rand) bool { return r.Uint64()>>63 == 1 }

// shuffleInts permutes p in place (Fisher-Yates).
func shuffleInts(r *rand.Rand, p []int) {
	for i := len(p) - 1; i > 0; i-- {
		j := randN(r, i+1)
		p[i], p[j] = p[j], p[i]
	}
}
