package experiments

import (
	"fmt"
	"image"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// GradientCorrelation is the lag-1 autocorrelation of the gradients df/dx
// over the input grid: near 1 for smooth gradients, near 0 for the
// "shattered" white-noise gradients of deep rectifier nets (Balduzzi et al.).
func GradientCorrelation(g []float64) float64 {
	if len(g) < 2 {
		return math.NaN()
	}
	mean := 0.0
	for _, v := range g {
		mean += v
	}
	mean /= float64(len(g))
	var num, den float64
	for i, v := range g {
		d := v - mean
		den += d * d
		if i > 0 {
			num += d * (g[i-1] - mean)
		}
	}
	if den == 0 {
		return 1 // a constant gradient is perfectly correlated
	}
	return num / den
}

// IncrementCorrelation is the lag-1 autocorrelation of the increments
// g[i+1]-g[i] of the gradient over the grid: about 1 for a smooth gradient,
// 0 for a random walk (the Brownian-looking gradients of a deep ReLU
// residual net) and -0.5 for white noise. On a fine grid it separates what
// GradientCorrelation cannot, since a random walk is also close to its
// neighbours.
func IncrementCorrelation(g []float64) float64 {
	if len(g) < 3 {
		return math.NaN()
	}
	d := make([]float64, len(g)-1)
	for i := range d {
		d[i] = g[i+1] - g[i]
	}
	return GradientCorrelation(d)
}

// GradientCovariance is the matrix of normalised products of centred
// gradients, C_ij = (g_i - mean)(g_j - mean) / var: the middle figure of each
// triplet of Figure 4.
func GradientCovariance(g []float64) [][]float64 {
	n := len(g)
	mean, variance := 0.0, 0.0
	for _, v := range g {
		mean += v
	}
	mean /= float64(n)
	for _, v := range g {
		variance += (v - mean) * (v - mean)
	}
	variance /= float64(n)
	if variance == 0 {
		variance = 1
	}
	c := make([][]float64, n)
	for i := range c {
		c[i] = make([]float64, n)
		for j := range c[i] {
			c[i][j] = (g[i] - mean) * (g[j] - mean) / variance
		}
	}
	return c
}

// ActivationLevels returns, for each unit of a hidden layer given row-major
// as points x units, the fraction of input points at which it is positive.
func ActivationLevels(h []float64, points, units int) []float64 {
	out := make([]float64, units)
	for p := 0; p < points; p++ {
		for u := 0; u < units; u++ {
			if h[p*units+u] > 0 {
				out[u]++
			}
		}
	}
	for u := range out {
		out[u] /= float64(points)
	}
	return out
}

// AlwaysNever counts units active at every point and at none.
func AlwaysNever(levels []float64) (always, never int) {
	for _, l := range levels {
		switch l {
		case 1:
			always++
		case 0:
			never++
		}
	}
	return always, never
}

// Fig4Panel is one triplet of Figure 4: one depth, with or without EraseReLU.
type Fig4Panel struct {
	Title     string
	X         []float64 // the input grid
	Gradients []float64 // df/dx at each grid point
	Levels    []float64 // activation level of each last-layer unit
}

// SavePanel draws the triplet (gradient curve, covariance image,
// activation histogram) side by side into a PNG file.
func SavePanel(p Fig4Panel, path string) error {
	const w, h = 10 * vg.Centimeter, 8 * vg.Centimeter
	c := vgimg.New(3*w, h)
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: 1, Cols: 3, PadX: vg.Millimeter, PadY: vg.Millimeter}

	grad := plot.New()
	grad.Title.Text = p.Title + ": df/dx"
	grad.X.Label.Text = "x"
	xy := make(plotter.XYs, len(p.X))
	for i := range p.X {
		xy[i].X, xy[i].Y = p.X[i], p.Gradients[i]
	}
	line, err := plotter.NewLine(xy)
	if err != nil {
		return fmt.Errorf("gradient curve: %w", err)
	}
	grad.Add(line)

	cov := plot.New()
	cov.Title.Text = "gradient covariance"
	img := covarianceImage(GradientCovariance(p.Gradients))
	n := float64(len(p.Gradients))
	cov.Add(plotter.NewImage(img, 0, 0, n, n))
	cov.HideAxes()

	hist := plot.New()
	hist.Title.Text = "last-layer activation levels"
	hist.X.Label.Text = "fraction of inputs active"
	vals := make(plotter.Values, len(p.Levels))
	copy(vals, p.Levels)
	hg, err := plotter.NewHist(vals, 20)
	if err != nil {
		return fmt.Errorf("activation histogram: %w", err)
	}
	hist.Add(hg)

	for i, pl := range []*plot.Plot{grad, cov, hist} {
		pl.Draw(tiles.At(dc, i, 0))
	}
	return savePNG(c, path)
}

// covarianceImage renders a matrix with a diverging palette, symmetric about 0.
func covarianceImage(c [][]float64) image.Image {
	n := len(c)
	limit := 0.0
	for i := range c {
		for _, v := range c[i] {
			limit = math.Max(limit, math.Abs(v))
		}
	}
	if limit == 0 {
		limit = 1
	}
	cm := moreland.SmoothBlueRed()
	cm.SetMin(-limit)
	cm.SetMax(limit)
	img := image.NewRGBA(image.Rect(0, 0, n, n))
	for i := range c {
		for j, v := range c[i] {
			col, err := cm.At(v)
			if err != nil {
				col = color.Black
			}
			img.Set(j, n-1-i, col)
		}
	}
	return img
}
