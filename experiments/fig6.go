package experiments

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// fig6Claims are the paper's words on Figure 6: (a) EraseReLU "outperforms
// the original model by about 3% top-1 accuracy", (b) "a comparable result".
var fig6Claims = map[string]Claim{"a": {Sign: -1, Paper: -3}, "b": {Sign: 0, Paper: math.NaN()}}

// fig6Report plots each panel's validation top-1 (solid) and top-5
// (dashed) accuracy per epoch, the original in blue and EraseReLU in red,
// as the paper's Figure 6, and compares the final top-1 errors.
func fig6Report(dir string, rs []JobResult) (string, error) {
	names, by := groups(rs)
	var panels []string
	runs := map[string]map[bool][]JobResult{} // panel -> erased? -> runs
	for _, g := range names {
		panel, _, _ := strings.Cut(g, "-")
		if runs[panel] == nil {
			runs[panel] = map[bool][]JobResult{}
			panels = append(panels, panel)
		}
		erased := by[g][0].Job.Erase > 0
		runs[panel][erased] = append(runs[panel][erased], by[g]...)
	}
	var b strings.Builder
	b.WriteString(header("Figure 6: ImageNet-10% (training and validation sets both subsampled), validation accuracy per epoch", rs))
	for _, panel := range panels {
		orig, er := runs[panel][false], runs[panel][true]
		if len(orig) == 0 || len(er) == 0 {
			return "", fmt.Errorf("fig6 panel %s: needs runs with and without EraseReLU", panel)
		}
		p := plot.New()
		p.Title.Text = fmt.Sprintf("Figure 6(%s): %s, EraseReLU %s, ImageNet-10%%", panel, er[0].Job.Arch, pct(er[0].Job.Erase))
		p.X.Label.Text, p.Y.Label.Text = "epoch", "validation accuracy (%)"
		p.Legend.Left, p.Legend.Top = true, true
		for _, side := range []struct {
			label string
			col   color.RGBA
			rs    []JobResult
		}{{"original", color.RGBA{B: 200, A: 255}, orig}, {"EraseReLU", color.RGBA{R: 220, A: 255}, er}} {
			r := side.rs[0] // the paper's figure is one run per curve
			for _, k := range []string{"top-1", "top-5"} {
				xy := plotter.XYs{}
				for _, e := range r.Result.History {
					err := e.Test.Top1Err
					if k == "top-5" {
						err = e.Test.Top5Err
					}
					xy = append(xy, plotter.XY{X: float64(e.Epoch), Y: 100 - err})
				}
				l, err := plotter.NewLine(xy)
				if err != nil {
					return "", err
				}
				l.Color = side.col
				if k == "top-5" {
					l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
				}
				p.Add(l)
				p.Legend.Add(side.label+" "+k, l)
			}
			s := summarize(side.rs)
			fmt.Fprintf(&b, "- (%s) %s %s: final top-1 error %s, top-5 %s\n", panel, r.Job.Arch, side.label, StatCell(s.TestTop1Err), StatCell(s.TestTop5Err))
		}
		fmt.Fprintf(&b, "- (%s) top-1 error, EraseReLU minus original: %s\n", panel, compareGroups(orig, er, fig6Claims[panel]))
		png := "fig6" + panel + ".png"
		if err := savePlot(p, 14*vg.Centimeter, 9*vg.Centimeter, filepath.Join(dir, png)); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "\n![fig6%s](%s)\n\n", panel, png)
	}
	b.WriteString("The paper's claims: (a) EraseReLU (100%) beats the original by about 3 points of top-1 accuracy; (b) ResNeXt-152 with EraseReLU (50%) is comparable to the original. Figure 6's caption names ResNet-101 for (a), its text ResNet-50: we follow the caption.\n")
	return b.String() + verdictNote, nil
}
