// Package loaders reads the image data sets used to reproduce the EraseReLU
// paper (MNIST, CIFAR-10, CIFAR-100, SVHN and ImageNet-style class folders)
// from their official file formats, and feeds them to a trainer through a
// deterministic, parallel input pipeline.
//
// A [Dataset] is a labelled set of fixed-shape uint8 images. The readers
// ([MNIST], [CIFAR10], [CIFAR100], [SVHN], [ImageFolder], or [Open] by name)
// validate their input and report truncated or corrupt files, bad magic
// numbers, out-of-range labels, wrongly sized images, empty class folders and
// missing splits as errors that name the file; they never return a silently
// short data set.
//
// Subsets for the paper's experiments are built with [Subset],
// [FirstPerClass], [RandomFraction] (nested: for one seed the 10% subset is
// contained in the 20% one, which is contained in the 30% one) and [Split]
// (train/validation).
//
// A [Batcher] turns a Dataset into batches of float32 or float64 tensors of
// shape (Batch, C, H, W), applying an [Augment] and a [Normalize] (see
// [Preset] for the paper's settings, section 4.1). Decoding and augmentation
// run on worker goroutines ahead of the consumer; the batches depend only on
// the configuration, the seed and the epoch number, never on the number of
// workers or on timing.
package loaders
