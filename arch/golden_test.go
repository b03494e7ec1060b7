package arch_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/graph"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

var update = flag.Bool("update", false, "rewrite testdata/graphs.golden from the current constructors")

// goldenConfigs are every listed architecture plus the variants the
// constructors branch on (after-activation, stochastic depth, dropout,
// explicit block types, small ResNeXt and ImageNet nets).
func goldenConfigs() []arch.Config {
	var cfgs []arch.Config
	for _, in := range arch.List() {
		cfgs = append(cfgs, arch.Config{Arch: in.Name})
	}
	return append(cfgs,
		arch.Config{Arch: "preact-resnet-20", AfterActivation: true},
		arch.Config{Arch: "preact-resnet-164", AfterActivation: true},
		arch.Config{Arch: "wrn-16-2-d", AfterActivation: true},
		arch.Config{Arch: "imagenet-preact-resnet-18", AfterActivation: true},
		arch.Config{Arch: "imagenet-preact-resnet-50"},
		arch.Config{Arch: "imagenet-resnet-18"},
		arch.Config{Arch: "imagenet-resnext-50-2x4d"},
		arch.Config{Arch: "resnet-20", StochasticDepth: true},
		arch.Config{Arch: "preact-resnet-164", StochasticDepth: true},
		arch.Config{Arch: "fig3-res-7", StochasticDepth: true},
		arch.Config{Arch: "resnext-29-2x4d", StochasticDepth: true},
		arch.Config{Arch: "resnet-20-bottleneck"},
		arch.Config{Arch: "preact-resnet-20-bottleneck"},
		arch.Config{Arch: "resnet-164-basic"},
		arch.Config{Arch: "wrn-16-1-d", Dropout: 0.5},
		arch.Config{Arch: "mlp-3", Dropout: -1},
		arch.Config{Arch: "inception-v2-3", Classes: 7, InputShape: [3]int{3, 16, 16}},
		arch.Config{Arch: "resnet-20", Dtype: tensor.Float64, Batch: 2, Seed: 9},
	)
}

// fingerprint describes a built graph: every parameter (name, shape,
// decay), buffer and module, a hash of the initial parameter values, and a
// hash of the whole forward graph (each node's op, shape and children in
// creation order), so two constructors that agree here build the same
// network with the same initialisation.
func fingerprint(g *graph.Graph) string {
	var b strings.Builder
	st := arch.Count(g)
	fmt.Fprintf(&b, "params %d macs %d modules %d relus %d\n", st.Params, st.MACs, st.Modules, st.ReLUs)
	vals := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	var raw []byte
	for _, p := range g.Params() {
		fmt.Fprintf(&b, "param %s %v nodecay=%v\n", p.Name, p.Node.Shape(), p.NoDecay)
		raw = raw[:0]
		switch d := p.Node.Value().Data().(type) {
		case []float32:
			for _, v := range d {
				raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
			}
		case []float64:
			for _, v := range d {
				raw = binary.LittleEndian.AppendUint64(raw, math.Float64bits(v))
			}
		}
		vals.Write(raw)
	}
	for _, buf := range g.Buffers() {
		fmt.Fprintf(&b, "buffer %s %v\n", buf.Name, buf.Value.Shape())
	}
	for _, m := range g.Modules() {
		fmt.Fprintf(&b, "module %s %v\n", m.Name, m.Kind)
	}
	nodes := g.Expr().AllNodes()
	index := map[*gorgonia.Node]int{}
	h := sha256.New()
	for i, n := range nodes {
		index[n] = i
		op := "var " + n.Name()
		if !n.IsVar() {
			op = fmt.Sprintf("%T %v", n.Op(), n.Op())
		}
		fmt.Fprintf(h, "%d %s %v %v [", i, op, n.Shape(), n.Dtype())
		for _, k := range graph.Children(n) {
			fmt.Fprintf(h, " %d", index[k])
		}
		fmt.Fprintln(h, " ]")
	}
	for _, name := range g.OutputNames() {
		n, _ := g.Output(name)
		fmt.Fprintf(h, "output %s %d\n", name, index[n])
	}
	fmt.Fprintf(&b, "init %08x\ngraph %d nodes %x\n", vals.Sum32(), len(nodes), h.Sum(nil)[:12])
	return b.String()
}

// TestGraphsMatchGolden pins every architecture's graph to the one the
// constructors built before they were reorganised (generated with -update
// from that code): the same parameters, buffers, modules, initial values
// and nodes.
func TestGraphsMatchGolden(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every listed architecture")
	}
	var b bytes.Buffer
	for _, cfg := range goldenConfigs() {
		g, err := arch.Build(cfg)
		if err != nil {
			t.Fatalf("%+v: %v", cfg, err)
		}
		dtype := "default"
		if cfg.Dtype != (tensor.Dtype{}) {
			dtype = cfg.Dtype.String()
		}
		fmt.Fprintf(&b, "== %s after=%v sd=%v dropout=%g classes=%d input=%v dtype=%s batch=%d seed=%d\n%s",
			cfg.Arch, cfg.AfterActivation, cfg.StochasticDepth, cfg.Dropout, cfg.Classes, cfg.InputShape, dtype, cfg.Batch, cfg.Seed, fingerprint(g))
	}
	path := filepath.Join("testdata", "graphs.golden.gz")
	if *update {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(b.Bytes())
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, z.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := readGzip(path)
	if err != nil {
		t.Fatalf("%v (generate it with go test ./arch -run TestGraphsMatchGolden -update)", err)
	}
	got := strings.Split(b.String(), "\n")
	wl := strings.Split(string(want), "\n")
	for i := 0; i < max(len(got), len(wl)); i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Fatalf("%s line %d:\n got  %q\n want %q", path, i+1, g, w)
		}
	}
}

func readGzip(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return io.ReadAll(zr)
}
