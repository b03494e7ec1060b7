package experiments

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/eraserelu/eraserelu/train"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// groups gathers the results of each group, in first-seen order.
func groups(rs []JobResult) (names []string, byGroup map[string][]JobResult) {
	byGroup = map[string][]JobResult{}
	for _, r := range rs {
		if _, ok := byGroup[r.Job.Group]; !ok {
			names = append(names, r.Job.Group)
		}
		byGroup[r.Job.Group] = append(byGroup[r.Job.Group], r)
	}
	return names, byGroup
}

func summarize(rs []JobResult) train.Summary {
	res := make([]train.Result, len(rs))
	for i, r := range rs {
		res[i] = r.Result
	}
	return train.Summarize(res)
}

func paperCell(v PaperValue, ok bool) string {
	if !ok {
		return "-"
	}
	if v.Std == 0 {
		return fmt.Sprintf("%.2f", v.Mean)
	}
	return fmt.Sprintf("%.2f ± %.2f", v.Mean, v.Std)
}

func header(title string, rs []JobResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s\n\n", title)
	if len(rs) > 0 {
		r := rs[0]
		fmt.Fprintf(&b, "Runs: %d. Recipe %s, %d epochs", len(rs), r.Result.Recipe, r.Result.Epochs)
		if r.Job.TrainPerClass > 0 {
			fmt.Fprintf(&b, ", first %d training images per class", r.Job.TrainPerClass)
		}
		if r.Job.TestPerClass > 0 {
			fmt.Fprintf(&b, ", first %d test images per class", r.Job.TestPerClass)
		}
		fmt.Fprintf(&b, ". Errors in %%.\n\n")
	}
	return b.String()
}

// proportionReport is Figure 3(a)-(c): error against the proportion, per data set.
func proportionReport(title, dir, name string, rs []JobResult) (string, error) {
	names, by := groups(rs)
	type point struct {
		p   float64
		sum train.Summary
	}
	series := map[string][]point{}
	var datasets []string
	for _, g := range names {
		j := by[g][0].Job
		if _, ok := series[j.Dataset]; !ok {
			datasets = append(datasets, j.Dataset)
		}
		series[j.Dataset] = append(series[j.Dataset], point{j.Erase, summarize(by[g])})
	}
	var rows [][]string
	for _, ds := range datasets {
		pts := series[ds]
		sort.Slice(pts, func(a, b int) bool { return pts[a].p < pts[b].p })
		base := math.NaN()
		for _, pt := range pts {
			if pt.p == 0 {
				base = 100 - pt.sum.TestTop1Err.Mean
			}
		}
		for _, pt := range pts {
			acc := 100 - pt.sum.TestTop1Err.Mean
			rel := "-"
			if !math.IsNaN(base) && base > 0 {
				rel = fmt.Sprintf("%+.2f", 100*(acc-base)/base)
			}
			rows = append(rows, []string{ds, pct(pt.p), pt.sum.TestTop1Err.String(), pt.sum.TrainTop1Err.String(), fmt.Sprintf("%.2f", acc), rel})
		}
	}
	md := header(title, rs) + train.MarkdownTable([]string{"Data set", "Proportion", "Test err", "Train err", "Test acc", "Relative acc change vs 0% (%)"}, rows)
	pl := plot.New()
	pl.Title.Text = title
	pl.X.Label.Text = "proportion of modules with EraseReLU"
	pl.Y.Label.Text = "test accuracy (%)"
	var args []any
	for _, ds := range datasets {
		var xy plotter.XYs
		for _, pt := range series[ds] {
			xy = append(xy, plotter.XY{X: pt.p, Y: 100 - pt.sum.TestTop1Err.Mean})
		}
		args = append(args, ds, xy)
	}
	if err := plotutil.AddLinePoints(pl, args...); err != nil {
		return "", err
	}
	png := name + ".png"
	if err := pl.Save(12*vg.Centimeter, 8*vg.Centimeter, filepath.Join(dir, png)); err != nil {
		return "", fmt.Errorf("plot %s: %w", png, err)
	}
	return md + fmt.Sprintf("\n![%s](%s)\n\nThe paper gives Figure 3 as plots only: it reports the best VGG-style proportion at 20%%, and every proportion above 0 beating the original for the residual-style net and the MLP.\n", name, png), nil
}

func depthReport(dir string, rs []JobResult) (string, error) {
	names, by := groups(rs)
	acc := map[int]map[float64]train.Summary{}
	var depths []int
	for _, g := range names {
		j := by[g][0].Job
		d, _ := strconv.Atoi(strings.TrimPrefix(j.Arch, "fig3-vgg-"))
		if acc[d] == nil {
			acc[d] = map[float64]train.Summary{}
			depths = append(depths, d)
		}
		acc[d][j.Erase] = summarize(by[g])
	}
	sort.Ints(depths)
	var rows [][]string
	orig, er := plotter.XYs{}, plotter.XYs{}
	for _, d := range depths {
		o, e := acc[d][0], acc[d][0.2]
		rows = append(rows, []string{strconv.Itoa(d), o.TestTop1Err.String(), e.TestTop1Err.String()})
		orig = append(orig, plotter.XY{X: float64(d), Y: 100 - o.TestTop1Err.Mean})
		er = append(er, plotter.XY{X: float64(d), Y: 100 - e.TestTop1Err.Mean})
	}
	title := "Figure 3(d): VGG-style nets by depth"
	md := header(title, rs) + train.MarkdownTable([]string{"Weighted layers", "Test err, original", "Test err, EraseReLU 20%"}, rows)
	pl := plot.New()
	pl.Title.Text = title
	pl.X.Label.Text = "weighted layers"
	pl.Y.Label.Text = "test accuracy (%)"
	if err := plotutil.AddLinePoints(pl, "original", orig, "EraseReLU", er); err != nil {
		return "", err
	}
	if err := pl.Save(12*vg.Centimeter, 8*vg.Centimeter, filepath.Join(dir, "fig3d.png")); err != nil {
		return "", err
	}
	return md + "\n![fig3d](fig3d.png)\n", nil
}

func table1Report(dir string, rs []JobResult) (string, error) {
	names, by := groups(rs)
	cells := map[string]map[int]map[string]train.Stat{"train": {}, "test": {}}
	var depths []int
	for _, g := range names {
		j := by[g][0].Job
		d, _ := strconv.Atoi(strings.TrimPrefix(j.Arch, "resnet-"))
		variant := strings.TrimPrefix(g, fmt.Sprintf("resnet%d-", d))
		if cells["train"][d] == nil {
			cells["train"][d], cells["test"][d] = map[string]train.Stat{}, map[string]train.Stat{}
			depths = append(depths, d)
		}
		s := summarize(by[g])
		cells["train"][d][variant], cells["test"][d][variant] = s.TrainTop1Err, s.TestTop1Err
	}
	sort.Ints(depths)
	hdr := append([]string{"Split", "Depth"}, Table1Variants...)
	var rows [][]string
	for _, split := range []string{"train", "test"} {
		for _, d := range depths {
			row := []string{split, strconv.Itoa(d)}
			for _, v := range Table1Variants {
				ours := "-"
				if s, ok := cells[split][d][v]; ok {
					ours = s.String()
				}
				pv, ok := Table1[split][d][v]
				row = append(row, fmt.Sprintf("%s (paper %s)", ours, paperCell(pv, ok)))
			}
			rows = append(rows, row)
		}
	}
	return header("Table 1: ResNet variants on CIFAR-100, error % (ours, paper in brackets)", rs) + train.MarkdownTable(hdr, rows), nil
}

func table2Report(dir string, rs []JobResult) (string, error) {
	names, by := groups(rs)
	type key struct{ arch, dataset string }
	ours := map[key]map[bool]train.Stat{}
	var keys []key
	for _, g := range names {
		j := by[g][0].Job
		k := key{j.Arch, j.Dataset}
		if ours[k] == nil {
			ours[k] = map[bool]train.Stat{}
			keys = append(keys, k)
		}
		ours[k][strings.HasSuffix(g, "-erased")] = summarize(by[g]).TestTop1Err
	}
	var rows [][]string
	for _, k := range keys {
		po, pe := "-", "-"
		for _, row := range Table2 {
			if row.Arch == k.arch {
				v, ok := row.Original[k.dataset]
				po = paperCell(v, ok)
				v, ok = row.Erased[k.dataset]
				pe = paperCell(v, ok)
			}
		}
		rows = append(rows, []string{k.arch, k.dataset, ours[k][false].String(), ours[k][true].String(), po, pe})
	}
	return header("Table 2: test error (%), original vs EraseReLU", rs) +
		train.MarkdownTable([]string{"Architecture", "Data set", "Original (ours)", "EraseReLU (ours)", "Original (paper)", "EraseReLU (paper)"}, rows), nil
}

// fig5Report plots accuracy and loss curves, train solid and test dashed,
// EraseReLU in red and the original in blue, as the paper's Figure 5.
func fig5Report(dir string, rs []JobResult) (string, error) {
	names, by := groups(rs)
	archs := map[string][]JobResult{}
	var order []string
	for _, g := range names {
		a := by[g][0].Job.Arch
		if _, ok := archs[a]; !ok {
			order = append(order, a)
		}
		archs[a] = append(archs[a], by[g][0])
	}
	var b strings.Builder
	b.WriteString(header("Figure 5: training curves with and without EraseReLU", rs))
	for _, a := range order {
		c := vgimg.New(24*vg.Centimeter, 8*vg.Centimeter)
		dc := draw.New(c)
		tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Centimeter}
		accP, lossP := plot.New(), plot.New()
		accP.Title.Text, lossP.Title.Text = a+": accuracy (%)", a+": loss"
		accP.X.Label.Text, lossP.X.Label.Text = "epoch", "epoch"
		lossP.Legend.Top = true // loss falls: keep the legend off the curves
		accP.Legend.Left = true
		for _, r := range archs[a] {
			col := color.RGBA{B: 200, A: 255}
			label := "original"
			if r.Job.Erase > 0 {
				col, label = color.RGBA{R: 220, A: 255}, "EraseReLU"
			}
			for _, split := range []string{"train", "test"} {
				acc, loss := plotter.XYs{}, plotter.XYs{}
				for _, e := range r.Result.History {
					m := e.Train
					if split == "test" {
						m = e.Test
					}
					acc = append(acc, plotter.XY{X: float64(e.Epoch), Y: 100 - m.Top1Err})
					loss = append(loss, plotter.XY{X: float64(e.Epoch), Y: m.Loss})
				}
				for _, pair := range []struct {
					p  *plot.Plot
					xy plotter.XYs
				}{{accP, acc}, {lossP, loss}} {
					l, err := plotter.NewLine(pair.xy)
					if err != nil {
						return "", err
					}
					l.Color = col
					if split == "test" {
						l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
					}
					pair.p.Add(l)
					pair.p.Legend.Add(label+" "+split, l)
				}
			}
			fmt.Fprintf(&b, "- %s %s: final test error %.2f%%, train error %.2f%%, test loss %.3f\n", a, label, r.Result.Final.Test.Top1Err, r.Result.Final.Train.Top1Err, r.Result.Final.Test.Loss)
		}
		accP.Draw(tiles.At(dc, 0, 0))
		lossP.Draw(tiles.At(dc, 1, 0))
		png := "fig5-" + a + ".png"
		if err := savePNG(c, filepath.Join(dir, png)); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "\n![%s](%s)\n\n", a, png)
	}
	return b.String(), nil
}

func table3Report(dir string, rs []JobResult) (string, error) {
	names, by := groups(rs)
	var rows [][]string
	for _, g := range names {
		j := by[g][0].Job
		s := summarize(by[g])
		variant := "original"
		if j.Erase > 0 {
			variant = "erased"
		}
		frac := fmt.Sprintf("%.0f%%", 100*j.Fraction)
		rows = append(rows, []string{"ResNet-50 " + variant, frac, pct(j.Erase), s.TestTop1Err.String(), s.TestTop5Err.String(),
			fmt.Sprintf("%.2f", Table3[variant]["top1"][frac]), fmt.Sprintf("%.2f", Table3[variant]["top5"][frac])})
	}
	return header("Table 3: ResNet-50 on ImageNet subsets, error %", rs) +
		train.MarkdownTable([]string{"Model", "Subset", "Proportion", "Top-1 (ours)", "Top-5 (ours)", "Top-1 (paper)", "Top-5 (paper)"}, rows), nil
}

func table4Report(dir string, rs []JobResult) (string, error) {
	names, by := groups(rs)
	var rows [][]string
	for _, g := range names {
		s := summarize(by[g])
		p1, p5 := "-", "-"
		for _, r := range Table4 {
			if r.Model == g {
				p1, p5 = fmt.Sprintf("%.1f", r.Top1), fmt.Sprintf("%.1f", r.Top5)
			}
		}
		rows = append(rows, []string{g, s.TestTop1Err.String(), s.TestTop5Err.String(), p1, p5})
	}
	return header("Table 4: full ImageNet, error %", rs) +
		train.MarkdownTable([]string{"Model", "Top-1 (ours)", "Top-5 (ours)", "Top-1 (paper)", "Top-5 (paper)"}, rows), nil
}
