package train

import (
	"context"
	"testing"

	"gorgonia.org/tensor"
)

func smallConfig(epochs int) Config {
	return Config{Recipe: "test", BatchSize: 16, Epochs: epochs, LR: 0.1, Momentum: 0.9, WeightDecay: 1e-4,
		Milestones: []int{3}, MilestoneUnit: "epoch", Gamma: 0.1, Seed: 1}
}

func TestTrainerLearns(t *testing.T) {
	cfg := smallConfig(4)
	p := buildNet(t, netSpec{dtype: tensor.Float64, batch: 16, in: 5, out: 4, hidden: 8, bias: true, seed: 1})
	tr := newBlobs(200, 5, 4, 1, 16, false)
	te := newBlobs(64, 5, 4, 1, 16, false)
	trainer, err := New(p, cfg, FromEpochs(tr), FromEpochs(te), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer trainer.Close()
	res, err := trainer.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range res.History {
		t.Logf("%+v", h)
	}
}
