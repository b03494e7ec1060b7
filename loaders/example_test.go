package loaders_test

import (
	"fmt"
	"log"

	"gorgonia.org/tensor"

	"github.com/eraserelu/eraserelu/loaders"
)

// A training loop over CIFAR-10 with the paper's preprocessing. (Not run:
// it needs the data.)
func Example() {
	train, err := loaders.Open("cifar10", "data/cifar-10-binary.tar.gz", true)
	if err != nil {
		log.Fatal(err)
	}
	// Hold out 10% (stratified) to select the EraseReLU proportion.
	fit, val := loaders.Split(train, 0.1, 1)
	_ = val

	norm, aug := loaders.Preset("cifar10", true)
	b, err := loaders.NewBatcher(fit, loaders.BatcherConfig{
		Batch: 128, Shuffle: true, Seed: 1, Normalize: norm, Augment: aug,
	})
	if err != nil {
		log.Fatal(err)
	}
	x, y := b.NewTensors(tensor.Float32) // (128, 3, 32, 32) and (128)
	for epoch := range 164 {
		it := b.Epoch(epoch)
		for {
			n, ok, err := it.Next(x, y)
			if err != nil {
				log.Fatal(err)
			}
			if !ok {
				break
			}
			_ = n // rows of x and y in use; a training step goes here
		}
		it.Close()
	}
	fmt.Println("done")
}
