package cpu

import (
	"runtime"
	"sync"
)

// This file holds the machinery the parallel kernels share: a persistent worker pool (so that a kernel run spawns no goroutines
// and allocates nothing) and a guard that makes OpenBLAS single-threaded
// while the pool's workers each run their own GEMMs. Both are process-wide
// resources, not configuration: the pool's workers are the machine's cores,
// started once, and OpenBLAS's thread count is a setting of the whole
// process. The workspace arena is a program's (Env).

// Task is kernel work over items [lo, hi) done by worker wk, where
// 0 <= wk < the number of workers the run was split into. A task owns its
// arguments as fields, so dispatching it allocates nothing.
type Task interface{ Run(wk, lo, hi int) }

type job struct {
	t          Task
	wk, lo, hi int
	wg         *sync.WaitGroup
}

// pool is started on first use and never changes after.
var pool struct {
	once sync.Once
	jobs chan job
}

func poolStart() {
	n := runtime.NumCPU()
	pool.jobs = make(chan job, 4*n)
	for i := 0; i < n; i++ {
		go func() {
			for j := range pool.jobs {
				j.t.Run(j.wk, j.lo, j.hi)
				j.wg.Done()
			}
		}()
	}
}

// Workers is how many workers a kernel over n items of total work should
// use: all of GOMAXPROCS when the work pays for it (at least minWork),
// never more than n.
func Workers(n int, work, minWork float64) int {
	w := runtime.GOMAXPROCS(0)
	if work < minWork {
		w = 1
	}
	return max(1, min(w, n))
}

// Parallel runs t over [0, n) split into workers balanced contiguous
// chunks: chunk 0 on the caller, the rest on the pool; it returns when all
// are done. Every worker gets at least one item when workers <= n. When
// blasSingle is set, OpenBLAS is held single-threaded meanwhile, because each
// worker calls its own GEMMs.
func Parallel(t Task, wg *sync.WaitGroup, workers, n int, blasSingle bool) {
	if workers <= 1 || n <= 1 {
		t.Run(0, 0, n)
		return
	}
	pool.once.Do(poolStart)
	if blasSingle {
		blasSingleEnter()
		defer blasSingleExit()
	}
	for wk := 1; wk < workers; wk++ {
		wg.Add(1)
		pool.jobs <- job{t: t, wk: wk, lo: wk * n / workers, hi: (wk + 1) * n / workers, wg: wg}
	}
	t.Run(0, 0, n/workers)
	wg.Wait()
}

// The BLAS thread guard: while at least one parallel kernel runs, OpenBLAS
// uses one thread per call; the previous setting is restored when the last
// one leaves. Measured on 2 cores: two workers with single-threaded GEMMs
// beat one worker with 2-thread GEMMs by 1.2-2x on ResNet-20's conv shapes,
// and 2-thread GEMMs called from two workers at once are slowest of all.
var blasGuard struct {
	mu    sync.Mutex
	depth int
	saved int
}

func blasSingleEnter() {
	blasGuard.mu.Lock()
	if blasGuard.depth == 0 {
		blasGuard.saved = blasThreads()
		if blasGuard.saved != 1 {
			setBLASThreads(1)
		}
	}
	blasGuard.depth++
	blasGuard.mu.Unlock()
}

func blasSingleExit() {
	blasGuard.mu.Lock()
	blasGuard.depth--
	if blasGuard.depth == 0 && blasGuard.saved != 1 {
		setBLASThreads(blasGuard.saved)
	}
	blasGuard.mu.Unlock()
}
