package ops

import "github.com/chewxy/hm"

// withBias is the signature shared by the ops that take x, a weight and an
// optional bias and return a tensor of x's rank (Conv2D, Linear).
type withBias struct {
	bias bool
	rank int
}

// HasBias reports whether the op takes a bias as third input.
func (s withBias) HasBias() bool { return s.bias }

func (s withBias) Arity() int {
	if s.bias {
		return 3
	}
	return 2
}

func (s withBias) Type() hm.Type {
	a := hm.TypeVariable('a')
	t := tensorType(s.rank, a)
	if s.bias {
		return fnType(t, t, tensorType(1, a), t)
	}
	return fnType(t, t, t)
}
