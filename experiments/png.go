package experiments

import (
	"io"

	"github.com/eraserelu/eraserelu/train"
	"gonum.org/v1/plot/vg/vgimg"
)

// savePNG writes a canvas to path atomically (train.WriteFileAtomic).
func savePNG(c *vgimg.Canvas, path string) error {
	return train.WriteFileAtomic(path, func(w io.Writer) error {
		_, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(w)
		return err
	})
}
