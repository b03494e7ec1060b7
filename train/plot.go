package train

import (
	"fmt"
	"image/color"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

var (
	trainColor = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	testColor  = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
)

// curve is one line of a plot: a value per epoch, NaNs skipped.
type curve struct {
	label  string
	color  color.Color
	dashed bool
	value  func(EpochMetrics) float64
}

// plotCurves renders the curves over the history as a PNG; ok is false
// when no curve has a finite point.
func plotCurves(w io.Writer, title, ylabel string, history []EpochMetrics, curves []curve) (ok bool, err error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "epoch"
	p.Y.Label.Text = ylabel
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	for _, c := range curves {
		var xys plotter.XYs
		for _, e := range history {
			if y := c.value(e); !math.IsNaN(y) && !math.IsInf(y, 0) {
				xys = append(xys, plotter.XY{X: float64(e.Epoch), Y: y})
			}
		}
		if len(xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return false, fmt.Errorf("plot %s: %w", title, err)
		}
		l.Color = c.color
		l.Width = vg.Points(1.5)
		if c.dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		if len(xys) == 1 {
			s, err := plotter.NewScatter(xys)
			if err != nil {
				return false, fmt.Errorf("plot %s: %w", title, err)
			}
			s.Color, s.Shape = c.color, draw.CircleGlyph{}
			p.Add(s)
		}
		p.Legend.Add(c.label, l)
		ok = true
	}
	if !ok {
		return false, nil
	}
	wt, err := p.WriterTo(7*vg.Inch, 4.5*vg.Inch, "png")
	if err != nil {
		return false, fmt.Errorf("plot %s: %w", title, err)
	}
	_, err = wt.WriteTo(w)
	return true, err
}

// PlotLoss renders the train and test loss curves as a PNG.
func PlotLoss(w io.Writer, title string, history []EpochMetrics) (bool, error) {
	return plotCurves(w, title, "loss", history, []curve{
		{"train", trainColor, false, func(e EpochMetrics) float64 { return e.Train.Loss }},
		{"test", testColor, false, func(e EpochMetrics) float64 { return e.Test.Loss }},
	})
}

// PlotError renders top-1 (solid) and top-5 (dashed) error curves, train and test.
func PlotError(w io.Writer, title string, history []EpochMetrics) (bool, error) {
	return plotCurves(w, title, "error (%)", history, []curve{
		{"train top-1", trainColor, false, func(e EpochMetrics) float64 { return e.Train.Top1Err }},
		{"test top-1", testColor, false, func(e EpochMetrics) float64 { return e.Test.Top1Err }},
		{"train top-5", trainColor, true, func(e EpochMetrics) float64 { return e.Train.Top5Err }},
		{"test top-5", testColor, true, func(e EpochMetrics) float64 { return e.Test.Top5Err }},
	})
}
