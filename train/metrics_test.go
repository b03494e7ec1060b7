package train

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	var rs []Result
	for i, e := range []float64{30, 31, 32, 33} {
		rs = append(rs, Result{Seed: uint64(i), Final: EpochMetrics{
			Train: Metrics{Loss: 0.5, Top1Err: 1, Top5Err: math.NaN()},
			Test:  Metrics{Loss: 1, Top1Err: e, Top5Err: 10}}})
	}
	s := Summarize(rs)
	if s.Runs != 4 || len(s.Seeds) != 4 {
		t.Errorf("runs %d seeds %v", s.Runs, s.Seeds)
	}
	// mean 31.5; sample std sqrt((2.25+0.25+0.25+2.25)/3) = 1.2909944...
	if s.TestTop1Err.Mean != 31.5 || math.Abs(s.TestTop1Err.Std-1.2909944487358056) > 1e-12 || s.TestTop1Err.N != 4 {
		t.Errorf("test top-1 %+v", s.TestTop1Err)
	}
	if s.TrainTop1Err.Std != 0 || s.TrainTop5Err.N != 0 {
		t.Errorf("train %+v %+v", s.TrainTop1Err, s.TrainTop5Err)
	}
	if got := s.TestTop1Err.String(); got != "31.50 ± 1.29" {
		t.Errorf("String %q", got)
	}
	if got := s.TrainTop5Err.String(); got != "-" {
		t.Errorf("String of nothing %q", got)
	}
	if got := NewStat([]float64{12.456}).String(); got != "12.46" {
		t.Errorf("String of one %q", got)
	}
	b, err := json.Marshal(s)
	if err != nil || !strings.Contains(string(b), `"train_top5_err":{"mean":null,"std":null,"n":0}`) {
		t.Errorf("json %s %v", b, err)
	}
	table := SummaryTable([]string{"ResNet-110"}, []Summary{s})
	want := "| Model | Runs | Train top-1 err (%) | Test top-1 err (%) | Test top-5 err (%) | Train loss | Test loss |\n" +
		"| --- | --- | --- | --- | --- | --- | --- |\n" +
		"| ResNet-110 | 4 | 1.00 ± 0.00 | 31.50 ± 1.29 | 10.00 ± 0.00 | 0.50 ± 0.00 | 1.00 ± 0.00 |\n"
	if table != want {
		t.Errorf("table\n%s\nwant\n%s", table, want)
	}
}

func TestMarkdownTable(t *testing.T) {
	got := MarkdownTable([]string{"a", "b"}, [][]string{{"1"}, {"x|y", "2", "dropped"}})
	want := "| a | b |\n| --- | --- |\n| 1 |  |\n| x\\|y | 2 |\n"
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

func TestMetricsCSVAndJSON(t *testing.T) {
	h := []EpochMetrics{
		{Epoch: 1, Step: 10, LR: 0.1, Train: Metrics{Loss: 2.5, Top1Err: 80, Top5Err: 40, Examples: 100}, Test: noMetrics(), Seconds: 1.25, ImagesPerSec: 80},
		{Epoch: 2, Step: 20, LR: 0.01, Train: Metrics{Loss: 1.0 / 3, Top1Err: 70, Top5Err: 30}, Test: Metrics{Loss: 1, Top1Err: 75, Top5Err: 35}},
	}
	csv := MetricsCSV(h)
	lines := strings.Split(strings.TrimSpace(string(csv)), "\n")
	if len(lines) != 3 || lines[0] != "epoch,step,lr,train_loss,train_top1_err,train_top5_err,test_loss,test_top1_err,test_top5_err,seconds,images_per_sec" {
		t.Fatalf("csv:\n%s", csv)
	}
	if lines[1] != "1,10,0.1,2.5,80,40,,,,1.25,80" {
		t.Errorf("row %q", lines[1])
	}
	back, err := ParseMetricsCSV(csv)
	if err != nil {
		t.Fatal(err)
	}
	if back[1].Train.Loss != 1.0/3 || !math.IsNaN(back[0].Test.Loss) || back[1].Test.Top5Err != 35 {
		t.Errorf("parsed %+v", back)
	}
	b, err := json.Marshal(h[0])
	if err != nil || !strings.Contains(string(b), `"test":{"loss":null,"top1_err":null,"top5_err":null,"examples":0}`) {
		t.Errorf("json %s %v", b, err)
	}
	var m EpochMetrics
	if err := json.Unmarshal(b, &m); err != nil || !math.IsNaN(m.Test.Top1Err) || m.Train != h[0].Train {
		t.Errorf("unmarshal %+v %v", m, err)
	}
	r := Result{BestTestTop1Err: math.NaN(), History: h}
	b, err = json.Marshal(r)
	if err != nil || !strings.Contains(string(b), `"best_test_top1_err":null`) {
		t.Errorf("result json %s %v", b, err)
	}
	var r2 Result
	if err := json.Unmarshal(b, &r2); err != nil || !math.IsNaN(r2.BestTestTop1Err) || len(r2.History) != 2 {
		t.Errorf("result unmarshal %+v %v", r2, err)
	}
}
