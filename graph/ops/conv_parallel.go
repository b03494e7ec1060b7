package ops

import (
	"runtime"
	"sync"
)

// This file holds the machinery the convolution and pooling kernels
// share: a persistent worker pool (so that a kernel run spawns no goroutines
// and allocates nothing), a guard that makes OpenBLAS single-threaded while
// the pool's workers each run their own GEMMs, and one scratch arena for the
// im2col workspaces of all conv ops.

// convTask is kernel work over items [lo, hi) done by worker wk, where
// 0 <= wk < the number of workers the run was split into. A task owns its
// arguments as fields, so dispatching it allocates nothing.
type convTask interface{ run(wk, lo, hi int) }

type convJob struct {
	t          convTask
	wk, lo, hi int
	wg         *sync.WaitGroup
}

var convPool struct {
	once sync.Once
	jobs chan convJob
}

func convPoolStart() {
	n := runtime.NumCPU()
	convPool.jobs = make(chan convJob, 4*n)
	for i := 0; i < n; i++ {
		go func() {
			for j := range convPool.jobs {
				j.t.run(j.wk, j.lo, j.hi)
				j.wg.Done()
			}
		}()
	}
}

// convWorkers is how many workers a kernel over n items of work units each
// should use: all of GOMAXPROCS when the total work pays for it, never
// more than n.
func convWorkers(n int, work float64) int {
	w := runtime.GOMAXPROCS(0)
	if work < convMinParallelWork {
		w = 1
	}
	return max(1, min(w, n))
}

// convMinParallelWork is the least total work (multiply-adds or element
// visits) for which a kernel is split across workers.
var convMinParallelWork = float64(1 << 17)

// convParallel runs t over [0, n) split into workers balanced contiguous
// chunks: chunk 0 on the caller, the rest on the pool; it returns when all
// are done. Every worker gets at least one item when workers <= n. When
// blasSingle is set, OpenBLAS is held single-threaded meanwhile, because each
// worker calls its own GEMMs.
func convParallel(t convTask, wg *sync.WaitGroup, workers, n int, blasSingle bool) {
	if workers <= 1 || n <= 1 {
		t.run(0, 0, n)
		return
	}
	convPool.once.Do(convPoolStart)
	if blasSingle {
		convBLASSingleEnter()
		defer convBLASSingleExit()
	}
	for wk := 1; wk < workers; wk++ {
		wg.Add(1)
		convPool.jobs <- convJob{t: t, wk: wk, lo: wk * n / workers, hi: (wk + 1) * n / workers, wg: wg}
	}
	t.run(0, 0, n/workers)
	wg.Wait()
}

// The BLAS thread guard: while at least one parallel kernel runs, OpenBLAS
// uses one thread per call; the previous setting is restored when the last
// one leaves. Measured on 2 cores: two workers with single-threaded GEMMs
// beat one worker with 2-thread GEMMs by 1.2-2x on ResNet-20's conv shapes,
// and 2-thread GEMMs called from two workers at once are slowest of all.
var convBLASGuard struct {
	mu    sync.Mutex
	depth int
	saved int
}

func convBLASSingleEnter() {
	convBLASGuard.mu.Lock()
	if convBLASGuard.depth == 0 {
		convBLASGuard.saved = convBLASThreads()
		if convBLASGuard.saved != 1 {
			convSetBLASThreads(1)
		}
	}
	convBLASGuard.depth++
	convBLASGuard.mu.Unlock()
}

func convBLASSingleExit() {
	convBLASGuard.mu.Lock()
	convBLASGuard.depth--
	if convBLASGuard.depth == 0 && convBLASGuard.saved != 1 {
		convSetBLASThreads(convBLASGuard.saved)
	}
	convBLASGuard.mu.Unlock()
}

// convScratch is the one workspace arena shared by every conv op: im2col
// columns, gathered gradients and per-worker partial sums live only within
// one kernel call, and a machine runs its ops one at a time, so one arena
// (grown to the largest need, never shrunk) serves all convolutions of a
// network instead of one workspace per op. The mutex serialises kernels of
// machines run concurrently on different goroutines.
var convScratch struct {
	mu  sync.Mutex
	f32 []float32
	f64 []float64
}

// convScratchLock locks the arena and returns at least n elements of it as
// []T; call convScratchUnlock when done with them.
func convScratchLock[T Float](n int) []T {
	convScratch.mu.Lock()
	var z T
	switch any(z).(type) {
	case float32:
		if len(convScratch.f32) < n {
			convScratch.f32 = make([]float32, n)
		}
		return any(convScratch.f32).([]T)
	default:
		if len(convScratch.f64) < n {
			convScratch.f64 = make([]float64, n)
		}
		return any(convScratch.f64).([]T)
	}
}

func convScratchUnlock() { convScratch.mu.Unlock() }
