package experiments

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeImageNet writes an ImageNet-format folder (root/{train,val}/<wnid>/
// *.JPEG) of small generated images: perClass[split] images per class.
func writeImageNet(t *testing.T, root string, classes int, perClass map[string]int) {
	t.Helper()
	for split, n := range perClass {
		for c := range classes {
			dir := filepath.Join(root, split, "n0144"+string(rune('0'+c))+"764")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for k := range n {
				img := image.NewNRGBA(image.Rect(0, 0, 40+k, 30))
				for y := range 30 {
					for x := range 40 + k {
						img.SetNRGBA(x, y, color.NRGBA{uint8(60*c + x), uint8(4 * y), uint8(20 * k), 255})
					}
				}
				var buf bytes.Buffer
				if err := jpeg.Encode(&buf, img, nil); err != nil {
					t.Fatal(err)
				}
				name := filepath.Join(dir, split+string(rune('a'+k))+".JPEG")
				if err := os.WriteFile(name, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// TestImageNetFractionSubsamplesBoth: the paper's ImageNet-10% samples the
// training and the validation images (section 4.3).
func TestImageNetFractionSubsamplesBoth(t *testing.T) {
	root := filepath.Join(t.TempDir(), "imagenet")
	writeImageNet(t, root, 2, map[string]int{"train": 10, "val": 20})
	tr, te, err := openSplits(Env{}, "imagenet", root, Job{Fraction: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Len() != 2 || te.Len() != 4 {
		t.Errorf("10%% of 20 training and 40 validation images: got %d and %d, want 2 and 4", tr.Len(), te.Len())
	}
}

// TestFig6Smoke trains both panels of Figure 6 on a generated ImageNet
// folder and checks the report: curves, final errors, the comparison.
func TestFig6Smoke(t *testing.T) {
	data := t.TempDir()
	writeImageNet(t, filepath.Join(data, "imagenet"), 2, map[string]int{"train": 1, "val": 1})
	e, err := Find("fig6")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	md, err := Run(context.Background(), Env{DataDir: data}, e, RunOptions{Scale: Smoke, Shard: All, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"(a) imagenet-resnet-18 original: final top-1 error", "(b) top-1 error, EraseReLU minus original:",
		"inconclusive (n too small)", "![fig6a](fig6a.png)", "Verdict rule:"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	for _, png := range []string{"fig6a.png", "fig6b.png"} {
		if st, err := os.Stat(filepath.Join(out, "fig6", png)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", png, err)
		}
	}
}
