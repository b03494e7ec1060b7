package layers

import (
	"fmt"
	"strings"

	"github.com/eraserelu/eraserelu/graph"
)

// Option sets one hyper-parameter of a layer. Each layer accepts the options
// that make sense for it and reports any other as an error, so a misplaced
// option (a Stride given to Dense) never goes unnoticed.
type Option struct {
	key   string
	apply func(*config)
}

// config holds every hyper-parameter of every layer; each layer reads its own.
type config struct {
	name     string
	stride   int
	pad      int
	padSet   bool
	groups   int
	bias     bool
	biasSet  bool
	init     graph.Init
	biasInit graph.Init
	momentum float64
	eps      float64
	noDecay  bool
}

// Name sets the scope the layer's parameters and buffers are created under,
// e.g. Name("conv1") gives "<scope>/conv1/weight". Without it a layer takes
// its kind ("conv", "bn", "fc", "ln", "prelu"), suffixed _1, _2, ... when the
// current scope already holds a layer of that name.
func Name(name string) Option {
	return Option{"Name", func(c *config) { c.name = name }}
}

// Stride is the convolution stride (default 1).
func Stride(s int) Option { return Option{"Stride", func(c *config) { c.stride = s }} }

// Pad is the convolution's zero padding on each border (default kernel/2,
// "same" for odd kernels at stride 1).
func Pad(p int) Option { return Option{"Pad", func(c *config) { c.pad, c.padSet = p, true }} }

// Groups splits a convolution into groups (default 1), as ResNeXt does.
func Groups(n int) Option { return Option{"Groups", func(c *config) { c.groups = n }} }

// Bias adds (or omits) a bias. Conv defaults to none, as every convolution
// of the paper's networks is followed by batch norm; Dense defaults to a bias.
func Bias(on bool) Option { return Option{"Bias", func(c *config) { c.bias, c.biasSet = on, true }} }

// Init sets the initialiser of the layer's weight (PReLU: of its slopes).
func Init(init graph.Init) Option { return Option{"Init", func(c *config) { c.init = init }} }

// BiasInit sets the initialiser of the layer's bias.
func BiasInit(init graph.Init) Option {
	return Option{"BiasInit", func(c *config) { c.biasInit = init }}
}

// Momentum is batch norm's running-statistics momentum (default 0.1, the
// weight of the new batch, as in PyTorch).
func Momentum(m float64) Option { return Option{"Momentum", func(c *config) { c.momentum = m }} }

// Eps is the normalisation epsilon (default 1e-5).
func Eps(e float64) Option { return Option{"Eps", func(c *config) { c.eps = e }} }

// NoDecay exempts the layer's scale and shift (or slopes) from weight
// decay. The default is decay on every parameter, as in PyTorch and in the
// original training code of the paper's networks.
func NoDecay(on bool) Option { return Option{"NoDecay", func(c *config) { c.noDecay = on }} }

// Accepted option keys per layer.
var (
	convKeys  = []string{"Name", "Stride", "Pad", "Groups", "Bias", "Init", "BiasInit"}
	bnKeys    = []string{"Name", "Momentum", "Eps", "NoDecay"}
	denseKeys = []string{"Name", "Bias", "Init", "BiasInit"}
	lnKeys    = []string{"Name", "Eps", "NoDecay"}
	preluKeys = []string{"Name", "Init", "NoDecay"}
)

// parse applies opts over the defaults, rejecting keys not in allowed.
func parse(layer string, allowed []string, opts []Option) (*config, error) {
	c := &config{stride: 1, groups: 1, momentum: 0.1, eps: 1e-5}
	for _, o := range opts {
		ok := false
		for _, k := range allowed {
			ok = ok || k == o.key
		}
		if !ok {
			return nil, fmt.Errorf("%s: option %s does not apply (valid: %s)", layer, o.key, strings.Join(allowed, ", "))
		}
		o.apply(c)
	}
	return c, nil
}

// split keeps the options whose key is in keys.
func split(opts []Option, keys []string) []Option {
	var out []Option
	for _, o := range opts {
		for _, k := range keys {
			if o.key == k {
				out = append(out, o)
				break
			}
		}
	}
	return out
}

// scopeName returns the layer's scope name: the Name option, or base made
// unique within the current scope.
func scopeName(g *graph.Graph, c *config, base string) string {
	if c.name != "" {
		return c.name
	}
	prefix := base + "/"
	if s := g.Scope(); s != "" {
		prefix = s + "/" + prefix
	}
	taken := func(p string) bool {
		for _, q := range g.Params() {
			if strings.HasPrefix(q.Name, p) {
				return true
			}
		}
		for _, b := range g.Buffers() {
			if strings.HasPrefix(b.Name, p) {
				return true
			}
		}
		return false
	}
	if !taken(prefix) {
		return base
	}
	stem := strings.TrimSuffix(prefix, "/")
	for i := 1; ; i++ {
		if !taken(fmt.Sprintf("%s_%d/", stem, i)) {
			return fmt.Sprintf("%s_%d", base, i)
		}
	}
}
