package cuda

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/eraserelu/eraserelu/arch"
	"github.com/eraserelu/eraserelu/erase"
	"github.com/eraserelu/eraserelu/graph"
	"github.com/eraserelu/eraserelu/layers"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The kernels of ops.cu, run from their own source on the CPU: a device
// check without a device. kernels/emu/cuda_emu.h maps what the kernels use
// of CUDA C++ onto the host compiler (shared memory as static storage, the
// threads of a block as fibers that meet at __syncthreads), and
// kernels/emu/emu.cpp runs launches read from a file. TestKernelsEmulated
// lowers steps, runs each of their kernel launches there on the reference
// interpreter's inputs, and compares what each writes with the
// interpreter's semantics (defKernel), as TestDeviceKernels does on a GPU.
// What it cannot see: the device's own arithmetic (nvcc contracts a*b+c
// into fma where the source does not forbid it; its exp and log differ in
// the last bits), races between warps that fibers stepped in order hide,
// launch limits and speed. What it does see: indexing, tiling, guards,
// shared-memory staging, barriers, rounding code, a kernel that disagrees
// with its reference, before any device time is spent.

// kernelParam is a parameter of a kernel of ops.cu: its kind (int, float,
// ptr) and its C type.
type kernelParam struct{ kind, ctype string }

var kernelSignature = regexp.MustCompile(`__global__\s+void\s+(\w+)\s*\(([^)]*)\)`)

// kernelSignatures parses the kernels of ops.cu in source order.
func kernelSignatures(src []byte) (names []string, params map[string][]kernelParam, err error) {
	params = map[string][]kernelParam{}
	for _, m := range kernelSignature.FindAllStringSubmatch(string(src), -1) {
		name := m[1]
		names = append(names, name)
		for _, p := range strings.Split(m[2], ",") {
			p = strings.Join(strings.Fields(p), " ")
			ctype := p[:strings.LastIndexAny(p, " *")+1]
			switch {
			case strings.Contains(p, "*"):
				params[name] = append(params[name], kernelParam{"ptr", strings.TrimSpace(ctype)})
			case strings.HasPrefix(p, "int "):
				params[name] = append(params[name], kernelParam{"int", "int"})
			case strings.HasPrefix(p, "float "):
				params[name] = append(params[name], kernelParam{"float", "float"})
			default:
				return nil, nil, fmt.Errorf("kernel %s: parameter %q of unknown kind", name, p)
			}
		}
	}
	return names, params, nil
}

// barrierKernels are the kernels of src that reach __syncthreads, directly
// or through the functions they call (found by name in their bodies,
// transitively).
func barrierKernels(src string) map[string]bool {
	def := regexp.MustCompile(`(?m)^(?:template\s*<[^>]*>\s*)?__(?:global|device)__[^(]*?(\w+)\s*\(`)
	bodies := map[string]string{}
	locs := def.FindAllStringSubmatchIndex(src, -1)
	for _, l := range locs {
		name := src[l[2]:l[3]]
		open := strings.Index(src[l[1]:], "{")
		if open < 0 {
			continue
		}
		depth, i := 0, l[1]+open
		for ; i < len(src); i++ {
			if src[i] == '{' {
				depth++
			} else if src[i] == '}' {
				if depth--; depth == 0 {
					break
				}
			}
		}
		bodies[name] += src[l[1]+open : i]
	}
	uses := map[string]bool{}
	for changed := true; changed; {
		changed = false
		for name, body := range bodies {
			if uses[name] {
				continue
			}
			hit := strings.Contains(body, "__syncthreads")
			for callee := range uses {
				hit = hit || regexp.MustCompile(`\b`+callee+`\s*\(`).MatchString(body)
			}
			if hit {
				uses[name], changed = true, true
			}
		}
	}
	return uses
}

// emuDispatch is the C++ that calls each kernel with the launch's ints,
// floats and buffers (the body of emu.cpp's dispatch), with barriers for
// the kernels that reach __syncthreads.
func emuDispatch(names []string, params map[string][]kernelParam, barriers map[string]bool) string {
	var b strings.Builder
	for _, name := range names {
		var args []string
		ni, nf, nb := 0, 0, 0
		for _, p := range params[name] {
			switch p.kind {
			case "int":
				args = append(args, fmt.Sprintf("I.at(%d)", ni))
				ni++
			case "float":
				args = append(args, fmt.Sprintf("F.at(%d)", nf))
				nf++
			default:
				args = append(args, fmt.Sprintf("(%s)B.at(%d)", p.ctype, nb))
				nb++
			}
		}
		fmt.Fprintf(&b, "if (name == %q) { launch(grid, block, %v, [&] { %s(%s); }); return; }\n", name, barriers[name], name, strings.Join(args, ", "))
	}
	return b.String()
}

var emuBuild struct {
	once sync.Once
	bin  string
	err  error
}

// emulator builds kernels/emu once per test binary; it skips without a
// C++ compiler (make deps installs g++).
func emulator(t *testing.T) string {
	t.Helper()
	cxx, err := exec.LookPath("g++")
	if err != nil {
		t.Skip("no g++ (make deps installs it): the kernels cannot run on the CPU")
	}
	emuBuild.once.Do(func() {
		src, err := os.ReadFile("kernels/ops.cu")
		if err != nil {
			emuBuild.err = err
			return
		}
		names, params, err := kernelSignatures(src)
		if err != nil {
			emuBuild.err = err
			return
		}
		dir, err := os.MkdirTemp("", "cuda-emu-")
		if err != nil {
			emuBuild.err = err
			return
		}
		if err := os.WriteFile(filepath.Join(dir, "dispatch.inc"), []byte(emuDispatch(names, params, barrierKernels(string(src)))), 0o644); err != nil {
			emuBuild.err = err
			return
		}
		emuBuild.bin = filepath.Join(dir, "emu")
		out, err := exec.Command(cxx, "-std=c++17", "-O2", "-ffp-contract=off", "-U_FORTIFY_SOURCE", "-I", dir, "-o", emuBuild.bin, "kernels/emu/emu.cpp").CombinedOutput()
		if err != nil {
			emuBuild.err = fmt.Errorf("building the emulator: %v\n%s", err, out)
		}
	})
	if emuBuild.err != nil {
		t.Fatal(emuBuild.err)
	}
	return emuBuild.bin
}

// emuRecord is one launch for the emulator: its buffers' contents before
// (from the reference) and the instruction.
type emuRecord struct {
	step  int
	in    Instr
	bufs  [][]float32
	alias []int // alias[i] >= 0: buffer i is buffer alias[i] (the same memory)
}

func (r emuRecord) write(w *bytes.Buffer) {
	u32 := func(v uint32) { binary.Write(w, binary.LittleEndian, v) }
	u32(uint32(len(r.in.Kernel)))
	w.WriteString(r.in.Kernel)
	d := Kernels[r.in.Kernel].Launch(r.in.Ints)
	u32(uint32(d.Grid))
	u32(uint32(d.Block))
	u32(uint32(len(r.in.Ints)))
	for _, v := range r.in.Ints {
		u32(uint32(int32(v)))
	}
	u32(uint32(len(r.in.Floats)))
	for _, v := range r.in.Floats {
		u32(math.Float32bits(float32(v)))
	}
	u32(uint32(len(r.bufs)))
	for i, b := range r.bufs {
		if r.alias[i] >= 0 {
			u32(math.MaxUint32)
			u32(uint32(r.alias[i]))
			continue
		}
		u32(uint32(len(b)))
		binary.Write(w, binary.LittleEndian, b)
	}
}

// spanningKernels may run past their buffers' extents, over N (their
// first int) elements of a region of the arena that several buffers share
// (the packed parameters and their gradients).
var spanningKernels = map[string]bool{fillKernel.name: true, sgdKernel.name: true, toBF16.name: true,
	toFP16.name: true, gradCheck.name: true, sgdScaled.name: true}

// emulate runs the launches of instructions [lo, hi) of s: each on the
// reference's inputs in the emulator, then on the reference (which goes on
// from its own result), and returns per launch the emulator's and the
// reference's buffers after it. GEMMs (cuBLAS calls) run on the reference
// only. A launch of a spanning kernel (the SGD over the packed parameters,
// to_bf16 over the parameter region, a fill of a packed region, the fp16
// step's scan of all gradients) gets N
// elements of the arena from each buffer's offset on.
func emulate(t *testing.T, s *Step, r *Ref, lo, hi int) (recs []emuRecord, got, want [][][]float32) {
	t.Helper()
	bin := emulator(t)
	var req bytes.Buffer
	for i := lo; i < hi; i++ {
		in := s.Instrs[i]
		if in.Kernel == "gemm" {
			if err := r.Run(i, i+1); err != nil {
				t.Fatal(err)
			}
			continue
		}
		rec := emuRecord{step: i, in: in}
		spans := spanningKernels[in.Kernel]
		for j, id := range in.Bufs {
			rec.alias = append(rec.alias, -1)
			for k := 0; k < j; k++ {
				if in.Bufs[k] == id {
					rec.alias[j] = k
				}
			}
			v := r.Buf(id)
			if spans {
				w := r.whole(id)
				v = w[:min(len(w), max(len(v), in.Ints[0]))]
			}
			rec.bufs = append(rec.bufs, append([]float32(nil), v...))
		}
		if err := r.Run(i, i+1); err != nil {
			t.Fatal(err)
		}
		after := make([][]float32, len(in.Bufs))
		for j, id := range in.Bufs {
			v := r.Buf(id)
			if spans {
				w := r.whole(id)
				v = w[:min(len(w), max(len(v), in.Ints[0]))]
			}
			after[j] = append([]float32(nil), v...)
		}
		recs = append(recs, rec)
		want = append(want, after)
	}
	binary.Write(&req, binary.LittleEndian, uint32(len(recs)))
	for _, rec := range recs {
		rec.write(&req)
	}
	dir := t.TempDir()
	if keep := os.Getenv("CUDA_EMU_KEEP"); keep != "" { // for debugging the emulator: emu REQUEST RESPONSE by hand
		var err error
		if dir, err = os.MkdirTemp(keep, strings.ReplaceAll(t.Name(), "/", "_")+"-"); err != nil {
			t.Fatal(err)
		}
		t.Logf("emulator request kept in %s", dir)
	}
	reqFile, respFile := filepath.Join(dir, "request"), filepath.Join(dir, "response")
	if err := os.WriteFile(reqFile, req.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, reqFile, respFile).CombinedOutput(); err != nil {
		t.Fatalf("emulator: %v\n%s", err, out)
	}
	resp, err := os.ReadFile(respFile)
	if err != nil {
		t.Fatal(err)
	}
	rd := bytes.NewReader(resp)
	for _, rec := range recs {
		var bufs [][]float32
		for j := range rec.bufs {
			var n uint32
			if err := binary.Read(rd, binary.LittleEndian, &n); err != nil {
				t.Fatalf("response: %v", err)
			}
			if rec.alias[j] >= 0 {
				bufs = append(bufs, bufs[rec.alias[j]])
				continue
			}
			v := make([]float32, n)
			if err := binary.Read(rd, binary.LittleEndian, v); err != nil {
				t.Fatalf("response: %v", err)
			}
			bufs = append(bufs, v)
		}
		got = append(got, bufs)
	}
	return recs, got, want
}

// TestKernelsEmulated: every launch of training and inference steps of
// networks that together use every kernel of the catalog, run from
// ops.cu's source on the CPU, writes what the reference semantics write:
// integer and explicitly rounded kernels (bitExact), int32 buffers and
// every 16-bit (bf16, fp16) write bit for bit, the rest within 1e-4
// relative (float32 sums in another order).
func TestKernelsEmulated(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	ran := map[string]int{}
	for _, tc := range []deviceCase{
		archCase("resnet-8", arch.Config{Arch: "resnet-8", Batch: 2}, false, erase.Identity, Lowering{}),
		archCase("resnet-8-direct", arch.Config{Arch: "resnet-8", Batch: 2}, false, erase.Identity, Lowering{DirectConv: true}),
		archCase("resnet-8-bf16", arch.Config{Arch: "resnet-8", Batch: 2}, false, erase.Identity, Lowering{Precision: BF16}),
		archCase("resnet-8-fp16", arch.Config{Arch: "resnet-8", Batch: 2}, false, erase.Identity, Lowering{Precision: FP16}),
		archCase("resnet-8-erased-bf16", arch.Config{Arch: "resnet-8", Batch: 2}, true, erase.Identity, Lowering{Precision: BF16}),
		archCase("resnet-8-prelu-erased-bf16", arch.Config{Arch: "resnet-8", Batch: 2}, true, erase.PReLU, Lowering{Precision: BF16}),
		archCase("resnet-8-stochastic-depth-bf16", arch.Config{Arch: "resnet-8", Batch: 2, StochasticDepth: true}, false, erase.Identity, Lowering{Precision: BF16}),
		archCase("preact-resnet-8-bf16", arch.Config{Arch: "preact-resnet-8", Batch: 2}, false, erase.Identity, Lowering{Precision: BF16}),
		archCase("resnet-8-stochastic-depth-erased-bf16", arch.Config{Arch: "resnet-8", Batch: 2, StochasticDepth: true}, true, erase.Identity, Lowering{Precision: BF16}),
		archCase("wrn-10-1-d-bf16", arch.Config{Arch: "wrn-10-1-d", Batch: 2}, false, erase.Identity, Lowering{Precision: BF16}),
		archCase("resnet-8-erased-prelu-stochastic-depth", arch.Config{Arch: "resnet-8", Batch: 2, StochasticDepth: true}, true, erase.PReLU, Lowering{}),
		{"mlp-layernorm-dropout", func(t *testing.T) (*graph.Graph, *graph.Program, []float32, []int) { return lnMLP(t, 8) }, Lowering{}},
		{"conv-bias-pools", poolNet, Lowering{}},
		{"direct-odd-channels", oddChannelNet, Lowering{DirectConv: true}},
		// bf16 storage in the combinations no architecture has (devicecases_test.go)
		probeCase("bf16-probe", 2, Lowering{Precision: BF16}),
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, p, xs, ys := tc.build(t)
			s, inf, err := LowerProgram(p, benchSGD, tc.low)
			if err != nil {
				t.Fatal(err)
			}
			if tc.low.DirectConv && indexOfKernel(s, convDirect.name) < 0 {
				t.Fatal("no conv_direct in a step lowered with DirectConv")
			}
			r := NewRef(s)
			upload(t, g, s, r, xs, ys)
			h := r.Buf(s.Hyper)
			h[HyperLR], h[HyperFirst] = 0.1, 1
			// The inference step runs on the training step's arena, after it.
			for _, rs := range []*Ref{r, {S: inf, Arena: r.Arena}} {
				st := rs.S
				recs, got, want := emulate(t, st, rs, 0, len(st.Instrs))
				for k, rec := range recs {
					ran[rec.in.Kernel]++
					for _, w := range rec.in.Writes {
						j := indexOf(rec.in.Bufs, w)
						if msg := emuCompare(st.Bufs[w], rec.in.Kernel, got[k][j], want[k][j]); msg != "" {
							t.Errorf("instruction %d %v: %s: %s", rec.step, rec.in, st.Bufs[w].Name, msg)
						}
					}
				}
			}
		})
	}
	t.Logf("%d kernels emulated: %v", len(ran), ran)
	var missed []string
	for name := range Kernels {
		if ran[name] == 0 {
			missed = append(missed, name)
		}
	}
	if len(missed) > 0 {
		slices.Sort(missed)
		t.Errorf("kernels no case of this test launches (add a network that does): %v", missed)
	}
}

// oddChannelNet has 3x3 convolutions whose channel counts conv_direct's
// tiles and staging chunks divide unevenly: x (2, 6, 16, 16) -> conv 3x3,
// 20 -> ReLU -> conv 3x3, 5 -> global average -> FC 10 (6 and 20 input
// channels: a partial chunk of 4; 20 and 5 output channels: a partial
// tile of 16; the data gradient swaps them).
func oddChannelNet(t *testing.T) (*graph.Graph, *graph.Program, []float32, []int) {
	t.Helper()
	return smallNet(t, []int{6, 16, 16}, func(g *graph.Graph, h *gorgonia.Node) (*gorgonia.Node, error) {
		h, err := layers.Conv(g, h, 20, 3, layers.Name("conv1"))
		if err != nil {
			return nil, err
		}
		if h, err = layers.ReLU(h); err != nil {
			return nil, err
		}
		if h, err = layers.Conv(g, h, 5, 3, layers.Name("conv2")); err != nil {
			return nil, err
		}
		return layers.GlobalAvgPool(h)
	})
}

// smallNet is body over a batch of 2 inputs of shape in, then FC 10 and
// the softmax cross-entropy, compiled with a random batch bound.
func smallNet(t *testing.T, in []int, body func(g *graph.Graph, h *gorgonia.Node) (*gorgonia.Node, error)) (*graph.Graph, *graph.Program, []float32, []int) {
	t.Helper()
	const batch = 2
	g := graph.New(tensor.Float32, 5)
	h := g.NewInput("x", tensor.Float32, append([]int{batch}, in...)...)
	y := g.NewInput("y", tensor.Int, batch)
	var logits *gorgonia.Node
	err := g.Within("net", func() error {
		h, err := body(g, h)
		if err != nil {
			return err
		}
		logits, err = layers.Dense(g, h, 10, layers.Name("fc"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	p := compileClassifier(t, g, logits, y)
	xs, ys := bindBatch(t, g, batch)
	return g, p, xs, ys
}

// poolNet is a small network of the layers no architecture case above
// has: a convolution with a bias (bias_nchw, channel_sum), max and average
// pooling with padding: x (2, 3, 12, 12) -> conv 3x3 + bias, 8 -> ReLU ->
// max pool 3/2 pad 1 -> conv 3x3, 8 (no bias) -> average pool 2/2 ->
// global average -> FC 10.
func poolNet(t *testing.T) (*graph.Graph, *graph.Program, []float32, []int) {
	t.Helper()
	return smallNet(t, []int{3, 12, 12}, func(g *graph.Graph, h *gorgonia.Node) (*gorgonia.Node, error) {
		h, err := layers.Conv(g, h, 8, 3, layers.Name("conv1"), layers.Bias(true))
		if err != nil {
			return nil, err
		}
		if h, err = layers.ReLU(h); err != nil {
			return nil, err
		}
		if h, err = layers.MaxPool(h, 3, 2, 1); err != nil {
			return nil, err
		}
		if h, err = layers.Conv(g, h, 8, 3, layers.Name("conv2")); err != nil {
			return nil, err
		}
		if h, err = layers.AvgPool(h, 2, 2, 0); err != nil {
			return nil, err
		}
		return layers.GlobalAvgPool(h)
	})
}

func indexOf(ids []int, id int) int {
	for i, v := range ids {
		if v == id {
			return i
		}
	}
	return -1
}

// emuCompare says how the emulator's words of buffer b differ from the
// reference's, or "" when they agree as the kernel's kind demands.
func emuCompare(b *Buf, kernel string, got, want []float32) string {
	n := min(len(want), b.Words())
	got, want = got[:n], want[:n]
	exact := bitExact[kernel] || b.Int
	switch {
	case exact:
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				return fmt.Sprintf("word %d: emulated %08x, reference %08x", i, math.Float32bits(got[i]), math.Float32bits(want[i]))
			}
		}
	case b.Double:
		if d := RelDiff(float64s(got), float64s(want)); d > 1e-4 || math.IsNaN(d) {
			return fmt.Sprintf("(float64) relative difference %.3g", d)
		}
	case b.Half():
		// a rounding of float32 values both compute alike, as on the device
		g, w := halves(got)[:b.Elems], halves(want)[:b.Elems]
		for i := range w {
			if g[i] != w[i] {
				return fmt.Sprintf("16-bit element %d: emulated %#04x, reference %#04x", i, g[i], w[i])
			}
		}
	default:
		if d := RelDiff(got, want); d > 1e-4 || math.IsNaN(d) {
			return fmt.Sprintf("relative difference %.3g", d)
		}
	}
	return ""
}

// bitExact are the kernels whose device (and emulated) output must equal
// the reference interpreter's bit for bit (integer generator, explicit
// rounding order).
var bitExact = map[string]bool{"rng_advance": true, "dropout_apply": true, "stochdepth_apply": true,
	"ln_fwd": true, "ln_input_grad": true, "ln_param_grad": true,
	// the fp16 roundings and loss scaler (integer or explicitly rounded)
	"to_fp16": true, "im2col_fp16": true, "grad_check": true, "sgd_scaled": true, "loss_scale_update": true}

// float64s reads a Double buffer's words as the float64 values they hold.
func float64s(words []float32) []float64 {
	out := make([]float64, len(words)/2)
	for i := range out {
		out[i] = getF64(words, i)
	}
	return out
}
