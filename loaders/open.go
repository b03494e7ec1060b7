package loaders

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// DatasetNames lists the names Open accepts.
func DatasetNames() []string {
	return []string{"mnist", "cifar10", "cifar100", "svhn", "imagefolder", "imagenet", "cifar10-jpeg"}
}

// Open opens the training (train=true) or test split of a data set by
// name:
//
//   - mnist: [MNIST](path, train)
//   - cifar10, cifar100: [CIFAR10], [CIFAR100](path, train)
//   - svhn: [SVHN](path, train)
//   - imagefolder: [ImageFolder](path, split) with split "train", or for
//     the test split the first of "val", "test" and "validation" present;
//     images must all have one size (no resizing)
//   - imagenet: as imagefolder, with [ResizeShorter](256): every image's
//     shorter side resized to 256 and the central 256x256 square kept (the
//     imagenet [Preset] then crops 224)
//   - cifar10-jpeg: the JPEG re-encoding of CIFAR-10 (path: the
//     cifar10-jpeg.tar.gz archive, a folder holding it, or the extracted
//     folder), splits "train" and "test", decoded into memory at once
//     ([Preload]); it must hold 10 classes of 3x32x32 images
//
// An unknown name is an error listing the valid names.
func Open(name, path string, train bool) (Dataset, error) {
	switch name {
	case "mnist":
		return MNIST(path, train)
	case "cifar10":
		return CIFAR10(path, train)
	case "cifar100":
		return CIFAR100(path, train)
	case "svhn":
		return SVHN(path, train)
	case "imagefolder", "imagenet":
		splits := []string{"train"}
		if !train {
			splits = []string{"val", "test", "validation"}
		}
		var opts []FolderOption
		if name == "imagenet" {
			opts = append(opts, ResizeShorter(256))
		}
		return openFolder(path, splits, opts...)
	case "cifar10-jpeg":
		if p := filepath.Join(path, "cifar10-jpeg.tar.gz"); isDir(path) && isFile(p) {
			path = p
		}
		split := "test"
		if train {
			split = "train"
		}
		ds, err := ImageFolder(path, split, Preload())
		if err != nil {
			return nil, err
		}
		if c, h, w := ds.Shape(); ds.NumClasses() != 10 || c != 3 || h != 32 || w != 32 {
			return nil, fmt.Errorf("cifar10-jpeg: %s: %d classes of %dx%dx%d images, want 10 of 3x32x32", path, ds.NumClasses(), c, h, w)
		}
		return ds, nil
	}
	return nil, fmt.Errorf("loaders: unknown data set %q (valid: %s)", name, strings.Join(DatasetNames(), ", "))
}

// IsMissing reports whether err says that a data set, one of its files or
// one of its splits does not exist (as opposed to a corrupt file).
func IsMissing(err error) bool {
	return errors.Is(err, errMissingSplit) || errors.Is(err, fs.ErrNotExist)
}
