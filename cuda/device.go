//go:build gpu

package cuda

/*
#cgo LDFLAGS: -lcuda -lcublas
#include <stdlib.h>
#include <string.h>
#include <cuda.h>
#include <cublas_v2.h>

// Device addresses are integers to Go; these turn them into the pointer
// types cuBLAS takes without a uintptr->unsafe.Pointer conversion in Go.
static void* dptr(CUdeviceptr p) { return (void*)p; }
static float* fptr(CUdeviceptr p) { return (float*)p; }

static const char* cuErrName(CUresult r) {
	const char* s = 0;
	cuGetErrorName(r, &s);
	return s ? s : "unknown CUresult";
}
*/
import "C"

import (
	_ "embed"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"github.com/eraserelu/eraserelu/cuda/kernels"
)

//go:embed kernels/ops.ptx
var opsPTX string

// PTX is the embedded module (for the probe).
func PTX() string { return opsPTX }

func cuCheck(what string, r C.CUresult) error {
	if r != C.CUDA_SUCCESS {
		return fmt.Errorf("%s: %s (%d)", what, C.GoString(C.cuErrName(r)), int(r))
	}
	return nil
}

func blasCheck(what string, s C.cublasStatus_t) error {
	if s != C.CUBLAS_STATUS_SUCCESS {
		return fmt.Errorf("%s: cuBLAS status %d", what, int(s))
	}
	return nil
}

// launch is one prepared instruction: the function and its argument
// block in C memory (kernelParams must not point into Go memory).
type launch struct {
	fn     C.CUfunction
	dim    Dim
	params *unsafe.Pointer // C array of pointers into vals
	gemm   *GemmArgs
	half   bool           // 16-bit operands (cublasGemmStridedBatchedEx), fp32 output
	htype  C.cudaDataType // their type: CUDA_R_16BF or CUDA_R_16F
	alpha  float32
	beta   float32
	ptrs   [3]C.CUdeviceptr
}

// Device runs a planned Step on GPU 0. Every method must be called from the
// goroutine that called Open (the CUDA context is current on its thread).
type Device struct {
	S        *Step
	opt      Options
	ctx      C.CUcontext
	dev      C.CUdevice
	mod      C.CUmodule
	stream   C.CUstream
	blas     C.cublasHandle_t
	arena    C.CUdeviceptr
	wsp      C.CUdeviceptr
	launches []launch
	cmem     []unsafe.Pointer
	host     unsafe.Pointer // pinned staging for x, y, hyper, metrics
	hostSize int
	gexec    C.CUgraphExec
	graph    C.CUgraph
	first    bool
	Name     string
	// Capability is the GPU's compute capability (major, minor).
	Capability [2]int
	// ModuleLoad is how long loading the PTX took: the driver's JIT
	// compilation for this GPU, unless its compute cache had it.
	ModuleLoad time.Duration
	// evals holds the prepared launches of inference steps lowered onto S.
	evals map[*Step][]launch
}

const blasWorkspace = 32 << 20

// Open creates the context, loads the PTX, allocates the arena (once) and
// prepares every launch.
func Open(s *Step, opt Options) (*Device, error) {
	runtime.LockOSThread()
	d := &Device{S: s, opt: opt, first: true}
	if err := cuCheck("cuInit", C.cuInit(0)); err != nil {
		return nil, err
	}
	if err := cuCheck("cuDeviceGet", C.cuDeviceGet(&d.dev, 0)); err != nil {
		return nil, err
	}
	var name [256]C.char
	C.cuDeviceGetName(&name[0], 256, d.dev)
	d.Name = C.GoString(&name[0])
	var major, minor C.int
	if err := cuCheck("cuDeviceGetAttribute (compute capability major)",
		C.cuDeviceGetAttribute(&major, C.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d.dev)); err != nil {
		return nil, err
	}
	if err := cuCheck("cuDeviceGetAttribute (compute capability minor)",
		C.cuDeviceGetAttribute(&minor, C.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, d.dev)); err != nil {
		return nil, err
	}
	d.Capability = [2]int{int(major), int(minor)}
	if err := CheckCapability(d.Name, d.Capability[0], d.Capability[1]); err != nil {
		return nil, err
	}
	if err := CheckPrecision(s, opt.Precision, d.Name, d.Capability[0], d.Capability[1]); err != nil {
		return nil, err
	}
	if err := cuCheck("cuDevicePrimaryCtxRetain", C.cuDevicePrimaryCtxRetain(&d.ctx, d.dev)); err != nil {
		return nil, err
	}
	if err := cuCheck("cuCtxSetCurrent", C.cuCtxSetCurrent(d.ctx)); err != nil {
		return nil, err
	}
	cptx := C.CString(opsPTX)
	defer C.free(unsafe.Pointer(cptx))
	// The driver JIT-compiles the PTX for this GPU here (or takes it from
	// its compute cache).
	t0 := time.Now()
	if err := cuCheck("cuModuleLoadData (ops.ptx, "+kernels.Arch+")", C.cuModuleLoadData(&d.mod, unsafe.Pointer(cptx))); err != nil {
		return nil, err
	}
	d.ModuleLoad = time.Since(t0)
	if err := cuCheck("cuStreamCreate", C.cuStreamCreate(&d.stream, C.CU_STREAM_NON_BLOCKING)); err != nil {
		return nil, err
	}
	if err := blasCheck("cublasCreate", C.cublasCreate(&d.blas)); err != nil {
		return nil, err
	}
	if err := blasCheck("cublasSetStream", C.cublasSetStream(d.blas, C.cudaStream_t(unsafe.Pointer(d.stream)))); err != nil {
		return nil, err
	}
	mode := C.cublasMath_t(C.CUBLAS_DEFAULT_MATH)
	if opt.Precision == TF32 {
		mode = C.CUBLAS_TF32_TENSOR_OP_MATH
	}
	if err := blasCheck("cublasSetMathMode", C.cublasSetMathMode(d.blas, mode)); err != nil {
		return nil, err
	}
	if err := cuCheck("cuMemAlloc workspace", C.cuMemAlloc(&d.wsp, blasWorkspace)); err != nil {
		return nil, err
	}
	if err := blasCheck("cublasSetWorkspace", C.cublasSetWorkspace(d.blas, C.dptr(d.wsp), blasWorkspace)); err != nil {
		return nil, err
	}
	if err := cuCheck(fmt.Sprintf("cuMemAlloc arena (%d bytes)", s.ArenaBytes), C.cuMemAlloc(&d.arena, C.size_t(s.ArenaBytes))); err != nil {
		return nil, err
	}
	// Zero the arena (velocities and anything read before written) on the
	// executor's stream, and wait: cuMemsetD8 would run on the legacy
	// stream, which the non-blocking stream does not wait for, and is
	// asynchronous to the host, so the Const uploads below could land
	// before it and be zeroed (on the H200 the loss gradient seed, near the
	// end of a 130 MB arena, was: every gradient 0, training at chance).
	if err := cuCheck("cuMemsetD8Async", C.cuMemsetD8Async(d.arena, 0, C.size_t(s.ArenaBytes), d.stream)); err != nil {
		return nil, err
	}
	if err := cuCheck("cuStreamSynchronize", C.cuStreamSynchronize(d.stream)); err != nil {
		return nil, err
	}
	for _, b := range s.Bufs {
		if b.Init != nil { // the Const buffers, the loss scaler
			if err := d.Write(d.bufID(b), b.Init); err != nil {
				return nil, err
			}
		}
	}
	d.hostSize = 4 * (s.Bufs[s.X].Elems + s.Bufs[s.Y].Elems + hyperLen + metricsLen + 1)
	if err := cuCheck("cuMemAllocHost", C.cuMemAllocHost(&d.host, C.size_t(d.hostSize))); err != nil {
		return nil, err
	}
	var err error
	if d.launches, err = d.prepare(s); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Device) bufID(b *Buf) int {
	for i, x := range d.S.Bufs {
		if x == b {
			return i
		}
	}
	return -1
}

func (d *Device) ptr(id int) C.CUdeviceptr { return d.bufPtr(d.S.Bufs[id]) }

func (d *Device) bufPtr(b *Buf) C.CUdeviceptr { return d.arena + C.CUdeviceptr(b.Offset) }

func (d *Device) cmalloc(n int) unsafe.Pointer {
	p := C.malloc(C.size_t(n))
	C.memset(p, 0, C.size_t(n))
	d.cmem = append(d.cmem, p)
	return p
}

// prepare resolves every function and packs every argument block of s (S,
// or a step lowered onto it, which shares its arena) once.
func (d *Device) prepare(s *Step) ([]launch, error) {
	fns := map[string]C.CUfunction{}
	var launches []launch
	for _, in := range s.Instrs {
		if in.Kernel == "gemm" {
			g, err := DecodeGemm(in.Ints)
			if err != nil {
				return nil, err
			}
			a := s.Bufs[in.Bufs[0]]
			l := launch{gemm: &g, half: a.Half(), htype: C.CUDA_R_16BF, alpha: float32(in.Floats[0]), beta: float32(in.Floats[1])}
			if a.FP16 {
				l.htype = C.CUDA_R_16F
			}
			for i := 0; i < 3; i++ {
				l.ptrs[i] = d.bufPtr(s.Bufs[in.Bufs[i]])
			}
			launches = append(launches, l)
			continue
		}
		k, ok := Kernels[in.Kernel]
		if !ok {
			return nil, fmt.Errorf("no kernel %q", in.Kernel)
		}
		fn, ok := fns[in.Kernel]
		if !ok {
			cname := C.CString(in.Kernel)
			r := C.cuModuleGetFunction(&fn, d.mod, cname)
			C.free(unsafe.Pointer(cname))
			if err := cuCheck("cuModuleGetFunction "+in.Kernel, r); err != nil {
				return nil, err
			}
			fns[in.Kernel] = fn
		}
		n := len(in.Ints) + len(in.Floats) + len(in.Bufs)
		vals := d.cmalloc(8 * max(n, 1))
		params := (*unsafe.Pointer)(d.cmalloc(int(unsafe.Sizeof(uintptr(0))) * max(n, 1)))
		pv := unsafe.Slice(params, max(n, 1))
		slot := 0
		put := func() unsafe.Pointer {
			p := unsafe.Add(vals, 8*slot)
			pv[slot] = p
			slot++
			return p
		}
		for _, v := range in.Ints {
			*(*int32)(put()) = int32(v)
		}
		for _, f := range in.Floats {
			*(*float32)(put()) = float32(f)
		}
		for _, id := range in.Bufs {
			*(*C.CUdeviceptr)(put()) = d.bufPtr(s.Bufs[id])
		}
		launches = append(launches, launch{fn: fn, dim: k.Launch(in.Ints), params: params})
	}
	return launches, nil
}

func (d *Device) run(lo, hi int) error { return d.launch(d.S, d.launches, lo, hi) }

// launch queues launches [lo, hi) of s on the stream.
func (d *Device) launch(s *Step, launches []launch, lo, hi int) error {
	for i := lo; i < hi; i++ {
		l := &launches[i]
		if l.gemm != nil {
			g := l.gemm.ColumnMajor()
			ga := l.gemm
			op := func(t bool) C.cublasOperation_t {
				if t {
					return C.CUBLAS_OP_T
				}
				return C.CUBLAS_OP_N
			}
			// Column-major: first operand is the row-major B, second A.
			in := C.CUdeviceptr(ElemSize)
			if l.half {
				in = BF16Bytes
			}
			pa := l.ptrs[1] + in*C.CUdeviceptr(ga.BOff)
			pb := l.ptrs[0] + in*C.CUdeviceptr(ga.AOff)
			pc := l.ptrs[2] + C.CUdeviceptr(4*ga.COff)
			alpha, beta := C.float(l.alpha), C.float(l.beta)
			var st C.cublasStatus_t
			if l.half {
				// bf16 or fp16 inputs on tensor cores, fp32 accumulation and output.
				st = C.cublasGemmStridedBatchedEx(d.blas, op(g.TransA), op(g.TransB), C.int(g.M), C.int(g.N), C.int(g.K),
					unsafe.Pointer(&alpha), C.dptr(pa), l.htype, C.int(g.LDA), C.longlong(ga.StrideB),
					C.dptr(pb), l.htype, C.int(g.LDB), C.longlong(ga.StrideA),
					unsafe.Pointer(&beta), C.dptr(pc), C.CUDA_R_32F, C.int(g.LDC), C.longlong(ga.StrideC), C.int(ga.Batch),
					C.CUBLAS_COMPUTE_32F, C.CUBLAS_GEMM_DEFAULT)
			} else {
				st = C.cublasSgemmStridedBatched(d.blas, op(g.TransA), op(g.TransB), C.int(g.M), C.int(g.N), C.int(g.K),
					&alpha, C.fptr(pa), C.int(g.LDA), C.longlong(ga.StrideB),
					C.fptr(pb), C.int(g.LDB), C.longlong(ga.StrideA),
					&beta, C.fptr(pc), C.int(g.LDC), C.longlong(ga.StrideC), C.int(ga.Batch))
			}
			if err := blasCheck(fmt.Sprintf("instruction %d %v", i, s.Instrs[i]), st); err != nil {
				return err
			}
			continue
		}
		r := C.cuLaunchKernel(l.fn, C.uint(l.dim.Grid), 1, 1, C.uint(l.dim.Block), 1, 1, C.uint(l.dim.Shared), d.stream, l.params, nil)
		if err := cuCheck(fmt.Sprintf("launch %d %v", i, s.Instrs[i]), r); err != nil {
			return err
		}
	}
	return nil
}

// Write copies host floats into buffer id and waits until they are there.
func (d *Device) Write(id int, v []float32) error {
	b := d.S.Bufs[id]
	if len(v) > b.Words() {
		return fmt.Errorf("write %s: %d values into %d", b.Name, len(v), b.Words())
	}
	if len(v) == 0 {
		return nil
	}
	// On the executor's stream and waited for: a plain cuMemcpyHtoD runs on
	// the legacy stream, which a non-blocking stream does not wait for, and
	// may return before its DMA lands (a kernel launched next read a
	// half-written input on the H200).
	if err := cuCheck("cuMemcpyHtoDAsync "+b.Name, C.cuMemcpyHtoDAsync(d.ptr(id), unsafe.Pointer(&v[0]), C.size_t(4*len(v)), d.stream)); err != nil {
		return err
	}
	return cuCheck("cuStreamSynchronize", C.cuStreamSynchronize(d.stream))
}

// Read copies buffer id to the host, after everything queued on the
// executor's stream, and waits.
func (d *Device) Read(id int) ([]float32, error) {
	b := d.S.Bufs[id]
	out := make([]float32, b.Words())
	if err := cuCheck("cuMemcpyDtoHAsync "+b.Name, C.cuMemcpyDtoHAsync(unsafe.Pointer(&out[0]), d.ptr(id), C.size_t(4*len(out)), d.stream)); err != nil {
		return nil, err
	}
	return out, cuCheck("cuStreamSynchronize", C.cuStreamSynchronize(d.stream))
}

// SetBatch stages the images and labels and queues their copy to the device
// (asynchronous, from pinned memory, ordered before the next step's kernels).
func (d *Device) SetBatch(x []float32, y []int) error {
	bx, by := d.S.Bufs[d.S.X], d.S.Bufs[d.S.Y]
	if len(x) != bx.Elems || len(y) != by.Elems {
		return fmt.Errorf("batch of %d images values and %d labels, step takes %d and %d", len(x), len(y), bx.Elems, by.Elems)
	}
	if err := cuCheck("cuStreamSynchronize", C.cuStreamSynchronize(d.stream)); err != nil {
		return err
	}
	hx := unsafe.Slice((*float32)(d.host), len(x))
	copy(hx, x)
	hy := unsafe.Slice((*int32)(unsafe.Add(d.host, 4*len(x))), len(y))
	for i, v := range y {
		hy[i] = int32(v)
	}
	if err := cuCheck("HtoD x", C.cuMemcpyHtoDAsync(d.ptr(d.S.X), d.host, C.size_t(4*len(x)), d.stream)); err != nil {
		return err
	}
	return cuCheck("HtoD y", C.cuMemcpyHtoDAsync(d.ptr(d.S.Y), unsafe.Add(d.host, 4*len(x)), C.size_t(4*len(y)), d.stream))
}

// Forward runs the forward and backward pass only (no optimizer): for
// numerical checks against the CPU.
func (d *Device) Forward() error {
	if err := d.run(0, d.S.OptStart); err != nil {
		return err
	}
	return cuCheck("sync", C.cuStreamSynchronize(d.stream))
}

// Optimize runs only the SGD update with learning rate lr.
func (d *Device) Optimize(lr float64) error {
	if err := d.hyper(lr); err != nil {
		return err
	}
	if err := d.run(d.S.OptStart, len(d.S.Instrs)); err != nil {
		return err
	}
	d.first = false
	return cuCheck("sync", C.cuStreamSynchronize(d.stream))
}

func (d *Device) hyper(lr float64) error {
	off := 4 * (d.S.Bufs[d.S.X].Elems + d.S.Bufs[d.S.Y].Elems)
	h := unsafe.Slice((*float32)(unsafe.Add(d.host, off)), hyperLen)
	h[HyperLR] = float32(lr)
	h[HyperFirst] = 0
	if d.first {
		h[HyperFirst] = 1
	}
	return cuCheck("HtoD hyper", C.cuMemcpyHtoDAsync(d.ptr(d.S.Hyper), unsafe.Add(d.host, off), 4*hyperLen, d.stream))
}

// Step runs one training step (forward, backward, SGD) on the staged batch
// and returns the metrics: the only device-to-host copy of the step.
func (d *Device) Step(lr float64) (StepMetrics, error) {
	if err := d.hyper(lr); err != nil {
		return StepMetrics{}, err
	}
	if d.opt.Graph {
		if d.gexec == nil {
			if err := d.capture(); err != nil {
				return StepMetrics{}, err
			}
		}
		if err := cuCheck("cuGraphLaunch", C.cuGraphLaunch(d.gexec, d.stream)); err != nil {
			return StepMetrics{}, err
		}
	} else if err := d.run(0, len(d.S.Instrs)); err != nil {
		return StepMetrics{}, err
	}
	d.first = false
	return d.metrics()
}

// metrics copies the metrics back after what the stream holds.
func (d *Device) metrics() (StepMetrics, error) {
	off := 4 * (d.S.Bufs[d.S.X].Elems + d.S.Bufs[d.S.Y].Elems + hyperLen)
	if err := cuCheck("DtoH metrics", C.cuMemcpyDtoHAsync(unsafe.Add(d.host, off), d.ptr(d.S.Metrics), 4*metricsLen, d.stream)); err != nil {
		return StepMetrics{}, err
	}
	if err := cuCheck("cuStreamSynchronize", C.cuStreamSynchronize(d.stream)); err != nil {
		return StepMetrics{}, err
	}
	m := unsafe.Slice((*float32)(unsafe.Add(d.host, off)), metricsLen)
	return StepMetrics{Loss: float64(m[MetricLoss]), Count: int(m[MetricCount]), Top1: int(m[MetricTop1]), Top5: int(m[MetricTop5])}, nil
}

// capture records the whole step once as a CUDA graph.
func (d *Device) capture() error {
	if err := cuCheck("cuStreamBeginCapture", C.cuStreamBeginCapture(d.stream, C.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)); err != nil {
		return err
	}
	runErr := d.run(0, len(d.S.Instrs))
	endErr := cuCheck("cuStreamEndCapture", C.cuStreamEndCapture(d.stream, &d.graph))
	if runErr != nil {
		return runErr
	}
	if endErr != nil {
		return endErr
	}
	return cuCheck("cuGraphInstantiateWithFlags", C.cuGraphInstantiateWithFlags(&d.gexec, d.graph, 0))
}

// MemInfo is the device's used and total memory in bytes.
func (d *Device) MemInfo() (used, total int64, err error) {
	var free, tot C.size_t
	if err := cuCheck("cuMemGetInfo", C.cuMemGetInfo(&free, &tot)); err != nil {
		return 0, 0, err
	}
	return int64(tot - free), int64(tot), nil
}

// Close frees everything.
func (d *Device) Close() {
	if d.gexec != nil {
		C.cuGraphExecDestroy(d.gexec)
		C.cuGraphDestroy(d.graph)
	}
	C.cublasDestroy(d.blas)
	C.cuMemFree(d.arena)
	C.cuMemFree(d.wsp)
	C.cuMemFreeHost(d.host)
	C.cuStreamDestroy(d.stream)
	C.cuModuleUnload(d.mod)
	C.cuDevicePrimaryCtxRelease(d.dev)
	for _, p := range d.cmem {
		C.free(p)
	}
	runtime.UnlockOSThread()
}

// RunRange launches instructions [lo, hi) and waits (for tracing).
func (d *Device) RunRange(lo, hi int) error {
	if err := d.run(lo, hi); err != nil {
		return err
	}
	return cuCheck("sync", C.cuStreamSynchronize(d.stream))
}

// Profile runs one whole step (forward, backward and SGD with learning rate
// lr) launch by launch, with a CUDA event between every two launches, and
// returns each instruction's device time in milliseconds. The events add a
// few microseconds per launch; the sum is close to, not equal to, a step.
func (d *Device) Profile(lr float64) ([]float64, error) {
	n := len(d.S.Instrs)
	ev := make([]C.CUevent, n+1)
	defer func() {
		for _, e := range ev {
			if e != nil {
				C.cuEventDestroy(e)
			}
		}
	}()
	for i := range ev {
		if err := cuCheck("cuEventCreate", C.cuEventCreate(&ev[i], C.CU_EVENT_DEFAULT)); err != nil {
			return nil, err
		}
	}
	if err := d.hyper(lr); err != nil {
		return nil, err
	}
	for i := 0; i < n; i++ {
		if err := cuCheck("cuEventRecord", C.cuEventRecord(ev[i], d.stream)); err != nil {
			return nil, err
		}
		if err := d.run(i, i+1); err != nil {
			return nil, err
		}
	}
	if err := cuCheck("cuEventRecord", C.cuEventRecord(ev[n], d.stream)); err != nil {
		return nil, err
	}
	d.first = false
	if err := cuCheck("cuEventSynchronize", C.cuEventSynchronize(ev[n])); err != nil {
		return nil, err
	}
	ms := make([]float64, n)
	for i := range ms {
		var t C.float
		if err := cuCheck("cuEventElapsedTime", C.cuEventElapsedTime(&t, ev[i], ev[i+1])); err != nil {
			return nil, err
		}
		ms[i] = float64(t)
	}
	return ms, nil
}
