package train

import (
	"math"
	"testing"
)

func TestSchedules(t *testing.T) {
	recipe := func(name string) Schedule {
		c, err := RecipeConfig(name)
		if err != nil {
			t.Fatal(err)
		}
		return c.Schedule()
	}
	cases := []struct {
		name string
		s    Schedule
		at   Point
		want float64
	}{
		{"constant", Constant(0.3), Point{Iter: 1e6, Epoch: 99}, 0.3},
		{"multistep epochs before", MultiStep(Constant(1), Epochs, 0.1, 2, 4), Point{Epoch: 1}, 1},
		{"multistep epochs at", MultiStep(Constant(1), Epochs, 0.1, 2, 4), Point{Epoch: 2}, 0.1},
		{"multistep epochs after both", MultiStep(Constant(1), Epochs, 0.1, 2, 4), Point{Epoch: 4}, 0.01},
		{"multistep iterations", MultiStep(Constant(1), Iterations, 0.5, 10), Point{Iter: 10, Epoch: 0}, 0.5},
		{"step every", StepEvery(Constant(1), Epochs, 0.1, 30), Point{Epoch: 59}, 0.1},
		{"step every iterations", StepEvery(Constant(1), Iterations, 0.5, 100), Point{Iter: 250}, 0.25},
		{"exponential", Exponential(Constant(2), Epochs, 0.5), Point{Epoch: 3}, 0.25},
		{"scale", Scale(MultiStep(Constant(1), Epochs, 0.1, 1), 3), Point{Epoch: 1}, 0.3},
		{"warm-up during", Warmup(Constant(0.1), 400, 0.01), Point{Iter: 399}, 0.01},
		{"warm-up after", Warmup(Constant(0.1), 400, 0.01), Point{Iter: 400}, 0.1},
		{"composed", Warmup(Scale(StepEvery(Constant(1), Epochs, 0.5, 1), 2), 5, 7), Point{Iter: 5, Epoch: 2}, 0.5},
		{"func", ScheduleFunc(func(p Point) float64 { return float64(p.Iter) }), Point{Iter: 7}, 7},

		{"he-resnet start", recipe("he-resnet"), Point{Iter: 0}, 0.1},
		{"he-resnet 31999", recipe("he-resnet"), Point{Iter: 31999, Epoch: 81}, 0.1},
		{"he-resnet 32k", recipe("he-resnet"), Point{Iter: 32000, Epoch: 81}, 0.01},
		{"he-resnet 48k", recipe("he-resnet"), Point{Iter: 48000, Epoch: 122}, 0.001},
		{"he-resnet-110 warm-up", recipe("he-resnet-110"), Point{Iter: 399}, 0.01},
		{"he-resnet-110 after warm-up", recipe("he-resnet-110"), Point{Iter: 400, Epoch: 1}, 0.1},
		{"he-resnet-110 32k", recipe("he-resnet-110"), Point{Iter: 32000, Epoch: 81}, 0.01},
		{"preact 80", recipe("preact-resnet"), Point{Iter: 40000, Epoch: 80}, 0.1},
		{"preact 81", recipe("preact-resnet"), Point{Iter: 40000, Epoch: 81}, 0.01},
		{"preact 122", recipe("preact-resnet"), Point{Iter: 60000, Epoch: 122}, 0.001},
		{"wrn 59", recipe("wrn"), Point{Iter: 1e5, Epoch: 59}, 0.1},
		{"wrn 60", recipe("wrn"), Point{Iter: 1e5, Epoch: 60}, 0.02},
		{"wrn 120", recipe("wrn"), Point{Iter: 1e5, Epoch: 120}, 0.004},
		{"wrn 199", recipe("wrn"), Point{Iter: 1e5, Epoch: 199}, 0.0008},
		{"wrn-svhn 79", recipe("wrn-svhn"), Point{Epoch: 79}, 0.01},
		{"wrn-svhn 80", recipe("wrn-svhn"), Point{Epoch: 80}, 0.001},
		{"wrn-svhn 159", recipe("wrn-svhn"), Point{Epoch: 159}, 0.0001},
		{"resnext 149", recipe("resnext"), Point{Epoch: 149}, 0.1},
		{"resnext 150", recipe("resnext"), Point{Epoch: 150}, 0.01},
		{"resnext 225", recipe("resnext"), Point{Epoch: 225}, 0.001},
		{"stochastic depth 249", recipe("stochastic-depth"), Point{Epoch: 249}, 0.1},
		{"stochastic depth 250", recipe("stochastic-depth"), Point{Epoch: 250}, 0.01},
		{"stochastic depth 375", recipe("stochastic-depth"), Point{Epoch: 375}, 0.001},
		{"imagenet 29", recipe("imagenet"), Point{Epoch: 29}, 0.1},
		{"imagenet 30", recipe("imagenet"), Point{Epoch: 30}, 0.01},
		{"imagenet 119", recipe("imagenet"), Point{Epoch: 119}, 0.0001},
		{"mlp 9", recipe("mlp-mnist"), Point{Epoch: 9}, 0.01},
		{"mlp 10", recipe("mlp-mnist"), Point{Epoch: 10}, 0.001},
		{"mlp 15", recipe("mlp-mnist"), Point{Epoch: 15}, 0.0001},
	}
	for _, c := range cases {
		if got := c.s.LR(c.at); math.Abs(got-c.want) > 1e-12*c.want {
			t.Errorf("%s at %+v: lr %v, want %v", c.name, c.at, got, c.want)
		}
	}
}

func TestParseUnit(t *testing.T) {
	for s, want := range map[string]Unit{"": Epochs, "epoch": Epochs, "Epochs": Epochs, "iteration": Iterations, "iters": Iterations} {
		if u, err := ParseUnit(s); err != nil || u != want {
			t.Errorf("ParseUnit(%q) = %v, %v", s, u, err)
		}
	}
	if _, err := ParseUnit("fortnight"); err == nil {
		t.Error("ParseUnit(fortnight): no error")
	}
}
