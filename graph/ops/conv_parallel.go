package ops

import (
	"runtime"
	"sync"
)

// This file holds the machinery the convolution and pooling kernels
// share: a persistent worker pool (so that a kernel run spawns no goroutines
// and allocates nothing) and a guard that makes OpenBLAS single-threaded
// while the pool's workers each run their own GEMMs. Both are process-wide
// resources, not configuration: the pool's workers are the machine's cores,
// started once, and OpenBLAS's thread count is a setting of the whole
// process. The workspace arena is a program's (Env).

// convTask is kernel work over items [lo, hi) done by worker wk, where
// 0 <= wk < the number of workers the run was split into. A task owns its
// arguments as fields, so dispatching it allocates nothing.
type convTask interface{ run(wk, lo, hi int) }

type convJob struct {
	t          convTask
	wk, lo, hi int
	wg         *sync.WaitGroup
}

// convPool is started on first use and never changes after.
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

// convWorkers is how many workers a kernel over n items of total work
// should use: all of GOMAXPROCS when the work pays for it
// (k.MinParallelWork), never more than n.
func convWorkers(n int, work float64, k *Kernels) int {
	w := runtime.GOMAXPROCS(0)
	if work < k.MinParallelWork {
		w = 1
	}
	return max(1, min(w, n))
}

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
