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
		fmt.Fprintf(&b, ". Errors in %%: mean ± sample std over the n seeds.\n\n")
	}
	return b.String()
}

// verdictNote closes every report that compares EraseReLU with the original.
const verdictNote = "\n" + VerdictRule + "\n"

// compareGroups is Compare on the final test top-1 errors of two groups.
func compareGroups(original, erased []JobResult, claim Claim) Comparison {
	return Compare(TestErrors(original), TestErrors(erased), claim)
}

// fitTitle wraps the plot's title at spaces so every line fits width:
// gonum/plot centres one long line and clips it at both ends of the image.
func fitTitle(p *plot.Plot, width vg.Length) {
	var lines []string
	cur := ""
	for _, w := range strings.Fields(p.Title.Text) {
		try := w
		if cur != "" {
			try = cur + " " + w
		}
		if cur != "" && p.Title.TextStyle.Width(try) > width {
			lines = append(lines, cur)
			try = w
		}
		cur = try
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	p.Title.Text = strings.Join(lines, "\n")
}

// savePlot writes a plot of the given size to path, its title wrapped to fit.
func savePlot(p *plot.Plot, w, h vg.Length, path string) error {
	fitTitle(p, w-vg.Centimeter/2)
	if err := p.Save(w, h, path); err != nil {
		return fmt.Errorf("plot %s: %w", filepath.Base(path), err)
	}
	return nil
}

// proportionReport is Figure 3(a)-(c): error against the proportion, per
// data set, each proportion compared with the original (0%).
func proportionReport(title, dir, name string, rs []JobResult) (string, error) {
	names, by := groups(rs)
	type point struct {
		p   float64
		sum train.Summary
		rs  []JobResult
	}
	series := map[string][]point{}
	var datasets []string
	for _, g := range names {
		j := by[g][0].Job
		if _, ok := series[j.Dataset]; !ok {
			datasets = append(datasets, j.Dataset)
		}
		series[j.Dataset] = append(series[j.Dataset], point{j.Erase, summarize(by[g]), by[g]})
	}
	var rows [][]string
	for _, ds := range datasets {
		pts := series[ds]
		sort.Slice(pts, func(a, b int) bool { return pts[a].p < pts[b].p })
		base := math.NaN()
		var baseRuns []JobResult
		for _, pt := range pts {
			if pt.p == 0 {
				base, baseRuns = 100-pt.sum.TestTop1Err.Mean, pt.rs
			}
		}
		for _, pt := range pts {
			acc := 100 - pt.sum.TestTop1Err.Mean
			rel, cmp := "-", "-"
			if !math.IsNaN(base) && base > 0 {
				rel = fmt.Sprintf("%+.2f", 100*(acc-base)/base)
			}
			if pt.p > 0 && baseRuns != nil {
				cmp = compareGroups(baseRuns, pt.rs, LowerError).String()
			}
			rows = append(rows, []string{ds, pct(pt.p), StatCell(pt.sum.TestTop1Err), StatCell(pt.sum.TrainTop1Err), fmt.Sprintf("%.2f", acc), rel, cmp})
		}
	}
	md := header(title, rs) + train.MarkdownTable([]string{"Data set", "Proportion", "Test err", "Train err", "Test acc", "Relative acc change vs 0% (%)", "Test err vs 0%: difference [95% CI]: verdict"}, rows)
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
	if err := savePlot(pl, 12*vg.Centimeter, 8*vg.Centimeter, filepath.Join(dir, png)); err != nil {
		return "", err
	}
	return md + fmt.Sprintf("\n![%s](%s)\n\nThe paper gives Figure 3 as plots only: it says reducing the ReLUs improves accuracy for all three nets, with the best VGG-style proportion at 20%%, and every proportion above 0 beating the original for the residual-style net; each proportion is tested here against that claim (EraseReLU lowers the error).\n", name, png) + verdictNote, nil
}

func depthReport(dir string, rs []JobResult) (string, error) {
	names, by := groups(rs)
	runs := map[int]map[float64][]JobResult{}
	var depths []int
	for _, g := range names {
		j := by[g][0].Job
		d, _ := strconv.Atoi(strings.TrimPrefix(j.Arch, "fig3-vgg-"))
		if runs[d] == nil {
			runs[d] = map[float64][]JobResult{}
			depths = append(depths, d)
		}
		runs[d][j.Erase] = by[g]
	}
	sort.Ints(depths)
	var rows [][]string
	orig, er := plotter.XYs{}, plotter.XYs{}
	for _, d := range depths {
		o, e := summarize(runs[d][0]), summarize(runs[d][0.2])
		rows = append(rows, []string{strconv.Itoa(d), StatCell(o.TestTop1Err), StatCell(e.TestTop1Err), compareGroups(runs[d][0], runs[d][0.2], LowerError).String()})
		orig = append(orig, plotter.XY{X: float64(d), Y: 100 - o.TestTop1Err.Mean})
		er = append(er, plotter.XY{X: float64(d), Y: 100 - e.TestTop1Err.Mean})
	}
	title := "Figure 3(d): VGG-style nets by depth"
	md := header(title, rs) + train.MarkdownTable([]string{"Weighted layers", "Test err, original", "Test err, EraseReLU 20%", "Difference [95% CI]: verdict"}, rows)
	pl := plot.New()
	pl.Title.Text = title
	pl.X.Label.Text = "weighted layers"
	pl.Y.Label.Text = "test accuracy (%)"
	if err := plotutil.AddLinePoints(pl, "original", orig, "EraseReLU", er); err != nil {
		return "", err
	}
	if err := savePlot(pl, 12*vg.Centimeter, 8*vg.Centimeter, filepath.Join(dir, "fig3d.png")); err != nil {
		return "", err
	}
	return md + "\n![fig3d](fig3d.png)\n\nThe paper's claim: EraseReLU (20%, our reading of the figure) becomes better than the original as the net deepens.\n" + verdictNote, nil
}

func table1Report(dir string, rs []JobResult) (string, error) {
	names, by := groups(rs)
	cells := map[string]map[int]map[string]train.Stat{"train": {}, "test": {}}
	runs := map[int]map[string][]JobResult{}
	var depths []int
	for _, g := range names {
		j := by[g][0].Job
		d, _ := strconv.Atoi(strings.TrimPrefix(j.Arch, "resnet-"))
		variant := strings.TrimPrefix(g, fmt.Sprintf("resnet%d-", d))
		if cells["train"][d] == nil {
			cells["train"][d], cells["test"][d] = map[string]train.Stat{}, map[string]train.Stat{}
			runs[d] = map[string][]JobResult{}
			depths = append(depths, d)
		}
		s := summarize(by[g])
		cells["train"][d][variant], cells["test"][d][variant] = s.TrainTop1Err, s.TestTop1Err
		runs[d][variant] = by[g]
	}
	sort.Ints(depths)
	hdr := append([]string{"Split", "Depth"}, Table1Variants...)
	var rows, cmpRows [][]string
	for _, split := range []string{"train", "test"} {
		for _, d := range depths {
			row := []string{split, strconv.Itoa(d)}
			for _, v := range Table1Variants {
				ours := "-"
				if s, ok := cells[split][d][v]; ok {
					ours = StatCell(s)
				}
				pv, ok := Table1[split][d][v]
				row = append(row, fmt.Sprintf("%s (paper %s)", ours, paperCell(pv, ok)))
			}
			rows = append(rows, row)
		}
	}
	for _, d := range depths {
		for _, v := range Table1Variants[1:] {
			if runs[d][v] == nil || runs[d]["ResNet"] == nil {
				continue
			}
			claim, paper := table1Claim(d, v)
			cmpRows = append(cmpRows, []string{strconv.Itoa(d), v, paper, compareGroups(runs[d]["ResNet"], runs[d][v], claim).String()})
		}
	}
	return header("Table 1: ResNet variants on CIFAR-100, error % (ours, paper in brackets)", rs) + train.MarkdownTable(hdr, rows) +
		"\nEach variant against ResNet, test error (variant minus ResNet, points):\n\n" +
		train.MarkdownTable([]string{"Depth", "Variant", "Paper's difference", "Ours [95% CI]: verdict"}, cmpRows) + verdictNote +
		"\nWhere the paper has no number for a depth, the claim's sign is taken from its ResNet-20 row.\n", nil
}

// table1Claim is the paper's test-error difference of a variant against
// ResNet at a depth, or, where it reports none, the sign of its ResNet-20
// difference with no size.
func table1Claim(depth int, variant string) (Claim, string) {
	base, ok1 := Table1["test"][depth]["ResNet"]
	v, ok2 := Table1["test"][depth][variant]
	if ok1 && ok2 {
		c := ClaimFromPaper(base.Mean, v.Mean)
		return c, fmt.Sprintf("%+.2f", c.Paper)
	}
	c := ClaimFromPaper(Table1["test"][20]["ResNet"].Mean, Table1["test"][20][variant].Mean)
	c.Paper = math.NaN()
	return c, "- (sign of ResNet-20's)"
}

// table2PaperProportion is the proportion the paper's validation chose
// (section 4.2): 50% for Inception-V2, 100% for the other families.
func table2PaperProportion(arch string) float64 {
	if strings.HasPrefix(arch, "inception-") {
		return 0.5
	}
	return 1
}

func table2Report(dir string, rs []JobResult) (string, error) {
	names, by := groups(rs)
	type key struct{ arch, dataset string }
	ours := map[key]map[bool][]JobResult{}
	var keys []key
	for _, g := range names {
		j := by[g][0].Job
		k := key{j.Arch, j.Dataset}
		if ours[k] == nil {
			ours[k] = map[bool][]JobResult{}
			keys = append(keys, k)
		}
		ours[k][strings.HasSuffix(g, "-erased")] = by[g]
	}
	var rows, selRows [][]string
	for _, k := range keys {
		po, pe := "-", "-"
		claim := LowerError
		for _, row := range Table2 {
			if row.Arch == k.arch {
				v, ok := row.Original[k.dataset]
				po = paperCell(v, ok)
				w, ok2 := row.Erased[k.dataset]
				pe = paperCell(w, ok2)
				if ok && ok2 {
					claim = ClaimFromPaper(v.Mean, w.Mean)
				}
			}
		}
		orig, er := ours[k][false], ours[k][true]
		prop := "-"
		if len(er) > 0 {
			prop = pct(er[0].Job.Erase)
			if sel := er[0].Job.Selection; sel != nil {
				prop += " (validation)"
				var cands []string
				for i, p := range sel.Candidates {
					if i < len(sel.ValErr) {
						cands = append(cands, fmt.Sprintf("%s: %.2f", pct(p), sel.ValErr[i]))
					}
				}
				selRows = append(selRows, []string{k.arch, k.dataset, strings.Join(cands, ", "), pct(sel.Chosen), pct(table2PaperProportion(k.arch))})
			}
		}
		rows = append(rows, []string{k.arch, k.dataset, StatCell(summarize(orig).TestTop1Err), StatCell(summarize(er).TestTop1Err), prop, po, pe,
			compareGroups(orig, er, claim).String()})
	}
	md := header("Table 2: test error (%), original vs EraseReLU", rs) +
		train.MarkdownTable([]string{"Architecture", "Data set", "Original (ours)", "EraseReLU (ours)", "Proportion (ours)", "Original (paper)", "EraseReLU (paper)", "EraseReLU minus original [95% CI]: verdict"}, rows)
	if len(selRows) > 0 {
		md += "\nProportion selection (section 4.2): validation top-1 error (%) of each candidate, trained on 90% of each class's training images and validated on the other 10% (seed 1); the chosen proportion is then trained on the full training set for every seed.\n\n" +
			train.MarkdownTable([]string{"Architecture", "Data set", "Validation error by proportion", "Chosen", "Paper's choice"}, selRows)
	}
	return md + verdictNote, nil
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
		fitTitle(accP, 11*vg.Centimeter)
		fitTitle(lossP, 11*vg.Centimeter)
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
		var orig, er []JobResult
		for _, g := range names {
			if by[g][0].Job.Arch == a && by[g][0].Job.Erase == 0 {
				orig = by[g]
			} else if by[g][0].Job.Arch == a {
				er = by[g]
			}
		}
		fmt.Fprintf(&b, "- %s final test error, EraseReLU minus original: %s\n", a, compareGroups(orig, er, LowerError))
		fmt.Fprintf(&b, "\n![%s](%s)\n\n", a, png)
	}
	return b.String() + verdictNote, nil
}

func table3Report(dir string, rs []JobResult) (string, error) {
	names, by := groups(rs)
	var rows, cmpRows [][]string
	original := map[string][]JobResult{}
	for _, g := range names {
		j := by[g][0].Job
		s := summarize(by[g])
		variant := "original"
		if j.Erase > 0 {
			variant = "erased"
		}
		frac := fmt.Sprintf("%.0f%%", 100*j.Fraction)
		rows = append(rows, []string{"ResNet-50 " + variant, frac, pct(j.Erase), StatCell(s.TestTop1Err), StatCell(s.TestTop5Err),
			fmt.Sprintf("%.2f", Table3[variant]["top1"][frac]), fmt.Sprintf("%.2f", Table3[variant]["top5"][frac])})
		if variant == "original" {
			original[frac] = by[g]
		} else if o, ok := original[frac]; ok {
			claim := ClaimFromPaper(Table3["original"]["top1"][frac], Table3["erased"]["top1"][frac])
			cmpRows = append(cmpRows, []string{frac, fmt.Sprintf("%+.2f", claim.Paper), compareGroups(o, by[g], claim).String()})
		}
	}
	return header("Table 3: ResNet-50 on ImageNet subsets (training and validation sets both subsampled), error %", rs) +
		train.MarkdownTable([]string{"Model", "Subset", "Proportion", "Top-1 (ours)", "Top-5 (ours)", "Top-1 (paper)", "Top-5 (paper)"}, rows) +
		"\nTop-1 error, EraseReLU minus original:\n\n" +
		train.MarkdownTable([]string{"Subset", "Paper's difference", "Ours [95% CI]: verdict"}, cmpRows) + verdictNote, nil
}

func table4Report(dir string, rs []JobResult) (string, error) {
	names, by := groups(rs)
	var rows, cmpRows [][]string
	paper := map[string]float64{}
	for _, r := range Table4 {
		paper[r.Model] = r.Top1
	}
	for _, g := range names {
		s := summarize(by[g])
		p1, p5 := "-", "-"
		for _, r := range Table4 {
			if r.Model == g {
				p1, p5 = fmt.Sprintf("%.1f", r.Top1), fmt.Sprintf("%.1f", r.Top5)
			}
		}
		rows = append(rows, []string{g, StatCell(s.TestTop1Err), StatCell(s.TestTop5Err), p1, p5})
		if base := strings.TrimSuffix(g, " with ER"); base != g && by[base] != nil {
			claim := ClaimFromPaper(paper[base], paper[g])
			cmpRows = append(cmpRows, []string{base, fmt.Sprintf("%+.1f", claim.Paper), compareGroups(by[base], by[g], claim).String()})
		}
	}
	return header("Table 4: full ImageNet, error %", rs) +
		train.MarkdownTable([]string{"Model", "Top-1 (ours)", "Top-5 (ours)", "Top-1 (paper)", "Top-5 (paper)"}, rows) +
		"\nTop-1 error, with ER minus without:\n\n" +
		train.MarkdownTable([]string{"Model", "Paper's difference", "Ours [95% CI]: verdict"}, cmpRows) + verdictNote, nil
}
