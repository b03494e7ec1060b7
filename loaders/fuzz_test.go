package loaders

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// The fuzz targets below run their seed corpora (testdata/fuzz/<name>/ and
// the f.Add seeds) as ordinary tests. Fuzz them with, for example,
//
//	go test -fuzz=FuzzIDX -fuzztime=20s ./loaders/

func idxSeeds() [][]byte {
	return [][]byte{
		idxBytes([]int{4}, []byte{0, 9, 3, 7}),
		idxBytes([]int{2, 28, 28}, pattern(2*784, 1)),
		idxBytes([]int{2, 3, 4, 5}, pattern(120, 2)),
		idxBytes([]int{3}, []byte{1, 2}),        // truncated
		idxBytes([]int{2}, []byte{1, 2, 3}),     // trailing byte
		{0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0}, // float element type
		{0, 0, 8, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	}
}

func FuzzIDX(f *testing.F) {
	for _, s := range idxSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dims, out, err := parseIDX(bytes.NewReader(data))
		if err != nil {
			return
		}
		n := 1
		for _, d := range dims {
			n *= d
		}
		if n != len(out) || 4+4*len(dims)+n != len(data) {
			t.Fatalf("dims %v: %d data bytes from a %d-byte file", dims, len(out), len(data))
		}
	})
}

type cifarSeed struct {
	data    []byte
	hundred bool
}

func cifarSeeds() []cifarSeed {
	p := pattern(2*cifarPixels, 3)
	ten := cifarRecords([][]byte{{3}, {9}}, [][]byte{p[:cifarPixels], p[cifarPixels:]})
	hundred := cifarRecords([][]byte{{19, 99}, {0, 0}}, [][]byte{p[:cifarPixels], p[cifarPixels:]})
	badLabel := bytes.Clone(ten)
	badLabel[cifarPixels+1] = 10
	return []cifarSeed{
		{ten, false},
		{hundred, true},
		{badLabel, false},
		{ten[:len(ten)-7], false},
		{nil, true},
	}
}

func FuzzCIFAR(f *testing.F) {
	for _, s := range cifarSeeds() {
		f.Add(s.data, s.hundred)
	}
	f.Fuzz(func(t *testing.T, data []byte, hundred bool) {
		sp := cifar10Spec()
		if hundred {
			sp = cifar100Spec()
		}
		pix, labels, err := parseCIFAR(data, sp.labelBytes, sp.labelIdx, sp.classes, sp.coarse)
		if err != nil {
			return
		}
		if len(pix) != len(labels)*cifarPixels || len(labels)*(cifarPixels+sp.labelBytes) != len(data) {
			t.Fatalf("%d labels, %d pixels from %d bytes", len(labels), len(pix), len(data))
		}
		for _, l := range labels {
			if l < 0 || int(l) >= sp.classes {
				t.Fatalf("label %d accepted", l)
			}
		}
	})
}

func matSeeds() [][]byte {
	imgs, digits := svhnFixture(2)
	le, be := binary.LittleEndian, binary.BigEndian
	plain := matWriter{le}.file(svhnVars(imgs, digits, false, le), false)
	return [][]byte{
		plain,
		matWriter{le}.file(svhnVars(imgs, digits, true, le), true),
		matWriter{be}.file(svhnVars(imgs[:1], digits[:1], true, be), false),
		matWriter{le}.file([]matVar{{name: "other", class: mxDOUBLE, dims: []int{1, 1}, typ: miDOUBLE, data: make([]byte, 8)}}, true),
		plain[:len(plain)-30],
		plain[:128],
	}
}

func FuzzMat(f *testing.F) {
	for _, s := range matSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		vars, err := parseMat(bytes.NewReader(data), func(string) bool { return true })
		if err == nil {
			for name, v := range vars {
				if len(v.data) != v.numel()*matSize(v.typ) {
					t.Fatalf("%s: %d bytes for %v of type %d", name, len(v.data), v.dims, v.typ)
				}
				v.float64s()
			}
		}
		ds, err := svhnFromMat(bytes.NewReader(data))
		if err != nil {
			return
		}
		if len(ds.pix) != ds.Len()*cifarPixels {
			t.Fatalf("%d images, %d pixel bytes", ds.Len(), len(ds.pix))
		}
		for i := range ds.Len() {
			if l := ds.Label(i); l < 0 || l > 9 {
				t.Fatalf("label %d accepted", l)
			}
		}
	})
}

// TestWriteFuzzCorpus regenerates the checked-in seed corpora under
// testdata/fuzz when LOADERS_WRITE_CORPUS=1.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("LOADERS_WRITE_CORPUS") != "1" {
		t.Skip("set LOADERS_WRITE_CORPUS=1 to rewrite testdata/fuzz seeds")
	}
	write := func(target string, i int, lines ...string) {
		var b bytes.Buffer
		b.WriteString("go test fuzz v1\n")
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
		writeFile(t, filepath.Join("testdata", "fuzz", target, fmt.Sprintf("seed%02d", i)), b.Bytes())
	}
	for i, s := range idxSeeds() {
		write("FuzzIDX", i, fmt.Sprintf("[]byte(%q)", s))
	}
	for i, s := range cifarSeeds() {
		write("FuzzCIFAR", i, fmt.Sprintf("[]byte(%q)", s.data), fmt.Sprintf("bool(%v)", s.hundred))
	}
	for i, s := range matSeeds() {
		write("FuzzMat", i, fmt.Sprintf("[]byte(%q)", s))
	}
}
