package experiments

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/pipeline"
	"github.com/eraserelu/eraserelu/train"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Fig4Config sizes Figure 4.
type Fig4Config struct {
	Depths []int
	Points int // input grid size over [-2, 2]
	Seeds  int // initialisations averaged in the summary
	// Erase is the proportion of modules with EraseReLU in the erased net.
	Erase float64
}

func fig4Config(s Scale) (Fig4Config, error) {
	switch s {
	case Smoke:
		return Fig4Config{Depths: []int{2, 8}, Points: 64, Seeds: 2, Erase: 1}, nil
	case Quick, Paper:
		// Figure 4 is cheap: quick already runs it at the paper's scale.
		return Fig4Config{Depths: []int{10, 50, 100, 200, 300}, Points: 1000, Seeds: 5, Erase: 1}, nil
	}
	return Fig4Config{}, fmt.Errorf("unknown scale %q", s)
}

func fig4() *Experiment {
	return &Experiment{
		Name:  "fig4",
		Title: "Figure 4: gradients df/dx of a deep scalar residual net, with and without EraseReLU",
		Direct: func(ctx context.Context, env Env, s Scale, dir string) (string, error) {
			cfg, err := fig4Config(s)
			if err != nil {
				return "", err
			}
			return RunFig4(ctx, cfg, dir)
		},
	}
}

// Fig4Result is one net's measurements.
type Fig4Result struct {
	Depth  int
	Erased bool
	Seed   uint64
	Panel  Fig4Panel
	// Correlation is the lag-1 autocorrelation of df/dx over the grid,
	// Smoothness that of its increments.
	Correlation, Smoothness float64
	// Always and Never count last-layer units active at every input / none.
	Always, Never int
}

// fig4Chunk is how many grid points one pass takes. Every layer of the
// scalar net acts on each point alone (fully connected, LayerNorm over the
// units), so passing the grid in chunks gives the same numbers as one pass
// while the activations of a 300-module net stay small.
const fig4Chunk = 100

// ScalarNet measures the Figure 4 quantities of one initialised net
// scalar-depth: df/dx on the grid and the last hidden layer's activations.
func ScalarNet(depth int, eraseP float64, points int, seed uint64) (*Fig4Result, error) {
	chunk := min(points, fig4Chunk)
	if points%chunk != 0 {
		return nil, fmt.Errorf("fig4: %d points do not split into chunks of %d", points, chunk)
	}
	net := pipeline.Net{Arch: fmt.Sprintf("scalar-%d", depth), Batch: chunk, Dtype: tensor.Float64, Seed: seed,
		Outputs: fig4Outputs, Loss: "sum", Compile: []graph.CompileOption{graph.WithInputGradients("x")}}
	if eraseP > 0 {
		net.Erase = &erase.Options{Proportion: eraseP}
	}
	// d sum(f(x_i)) / d x_i = f'(x_i): each point only reaches its own output.
	nw, err := pipeline.Compile(net)
	if err != nil {
		return nil, err
	}
	defer nw.Close()
	g, prog := nw.Graph, nw.Program
	x, _ := g.Input("x")
	y, _ := g.Input("y")
	grid := make([]float64, points)
	for i := range grid {
		grid[i] = -2 + 4*float64(i)/float64(points-1)
	}
	xs := make([]float64, chunk)
	if err := gorgonia.Let(x, tensor.New(tensor.WithShape(chunk, 1), tensor.WithBacking(xs))); err != nil {
		return nil, err
	}
	if err := gorgonia.Let(y, tensor.New(tensor.WithShape(chunk, 1), tensor.WithBacking(make([]float64, chunk)))); err != nil {
		return nil, err
	}
	dx, err := prog.InputGrad("x")
	if err != nil {
		return nil, err
	}
	hidden, err := prog.Output("hidden")
	if err != nil {
		return nil, err
	}
	units := hidden.Shape()[1]
	grads := make([]float64, 0, points)
	acts := make([]float64, 0, points*units)
	for lo := 0; lo < points; lo += chunk {
		copy(xs, grid[lo:lo+chunk])
		if err := prog.Train(); err != nil {
			return nil, err
		}
		grads = append(grads, dx.Float64s()...)
		acts = append(acts, hidden.Float64s()...)
	}
	r := &Fig4Result{Depth: depth, Erased: eraseP > 0, Seed: seed}
	r.Panel = Fig4Panel{X: grid, Gradients: grads, Levels: ActivationLevels(acts, points, units)}
	r.Correlation = GradientCorrelation(r.Panel.Gradients)
	r.Smoothness = IncrementCorrelation(r.Panel.Gradients)
	r.Always, r.Never = AlwaysNever(r.Panel.Levels)
	return r, nil
}

// fig4Outputs names the scalar net's last hidden layer ("hidden") and the
// sum of its outputs over the batch ("sum", the gradient target).
func fig4Outputs(g *graph.Graph) error {
	mods := g.Modules()
	g.SetOutput("hidden", mods[len(mods)-1].Output)
	yHat, ok := g.Output("y_hat")
	if !ok {
		return fmt.Errorf("scalar net has no output y_hat")
	}
	sum, err := gorgonia.Sum(yHat)
	if err != nil {
		return err
	}
	g.SetOutput("sum", sum)
	return nil
}

// RunFig4 measures every depth with and without EraseReLU over several
// initialisations, draws the first seed's triplets and returns the report.
func RunFig4(ctx context.Context, cfg Fig4Config, dir string) (string, error) {
	var rows [][]string
	var b strings.Builder
	for _, d := range cfg.Depths {
		for _, p := range []float64{0, cfg.Erase} {
			var corr, smooth, always, never []float64
			for s := 1; s <= cfg.Seeds; s++ {
				if err := ctx.Err(); err != nil {
					return "", err
				}
				r, err := ScalarNet(d, p, cfg.Points, uint64(s))
				if err != nil {
					return "", fmt.Errorf("fig4 depth %d: %w", d, err)
				}
				corr = append(corr, r.Correlation)
				smooth = append(smooth, r.Smoothness)
				units := float64(len(r.Panel.Levels))
				always = append(always, 100*float64(r.Always)/units)
				never = append(never, 100*float64(r.Never)/units)
				if s == 1 {
					name := "with ReLU"
					if p > 0 {
						name = fmt.Sprintf("EraseReLU %s", pct(p))
					}
					r.Panel.Title = fmt.Sprintf("depth %d, %s", d, name)
					png := fmt.Sprintf("fig4-depth%d-%s.png", d, map[bool]string{false: "relu", true: "erased"}[p > 0])
					if err := SavePanel(r.Panel, filepath.Join(dir, png)); err != nil {
						return "", err
					}
					fmt.Fprintf(&b, "![%s](%s)\n\n", r.Panel.Title, png)
				}
			}
			variant := "with ReLU"
			if p > 0 {
				variant = "EraseReLU " + pct(p)
			}
			rows = append(rows, []string{fmt.Sprint(d), variant, train.NewStat(corr).String(), train.NewStat(smooth).String(), train.NewStat(always).String(), train.NewStat(never).String()})
		}
	}
	md := fmt.Sprintf("## Figure 4: scalar residual nets f: R -> R at initialisation\n\n%d input points in [-2, 2], %d initialisations per net (mean ± std). "+
		"Gradient correlation is the lag-1 autocorrelation of df/dx over the grid; increment correlation that of its steps df/dx(x+h) - df/dx(x): "+
		"about 1 for a smooth gradient, 0 for a random walk (the 'shattered gradients' of deep rectifier nets, Balduzzi et al. 2017), -0.5 for white noise. "+
		"A last-layer unit is active at an input when its value is positive.\n\n", cfg.Points, cfg.Seeds)
	md += train.MarkdownTable([]string{"Modules", "Net", "Gradient correlation", "Increment correlation", "Units always active (%)", "Units never active (%)"}, rows)
	return md + "\n" + b.String(), nil
}
