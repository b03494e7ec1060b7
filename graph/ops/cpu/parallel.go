package cpu

import (
	"runtime"
	"sync"
)

// This file holds the element-wise kernels' way onto the cores: the worker
// pool of pool.go, so that a kernel spawns no goroutine.
//
// An op keeps its kernel's arguments in a field (a struct with a RunRange
// method) and hands a pointer to it to ParallelRun, which allocates nothing;
// ops that are not hot paths can still pass a func to ParallelFor or
// ParallelItems (one allocation for the func value, no goroutine).

// minGrain is the least work (in elements) worth a worker of its own.
const minGrain = 1 << 14

// RangeTask is element-wise work over [lo, hi).
type RangeTask interface{ RunRange(lo, hi int) }

// RangeWorkers is how many workers n items of itemSize elements each deserve.
func RangeWorkers(n, itemSize int) int {
	workers := runtime.GOMAXPROCS(0)
	if total := n * itemSize; workers > total/minGrain {
		workers = total / minGrain
	}
	return max(1, min(workers, n))
}

// rangeAdapter runs a RangeTask as a Task.
type rangeAdapter struct{ t RangeTask }

func (a *rangeAdapter) Run(_, lo, hi int) { a.t.RunRange(lo, hi) }

var rangeAdapters = sync.Pool{New: func() any { return new(rangeAdapter) }}
var waitGroups = sync.Pool{New: func() any { return new(sync.WaitGroup) }}

// ParallelRun runs t over [0, n) items of itemSize elements each, split into
// contiguous chunks over the pool when the work pays for it, else inline.
// Pass a pointer that outlives the call (an op field) and it allocates nothing.
func ParallelRun(t RangeTask, n, itemSize int) {
	workers := RangeWorkers(n, itemSize)
	if workers <= 1 {
		t.RunRange(0, n)
		return
	}
	a := rangeAdapters.Get().(*rangeAdapter)
	wg := waitGroups.Get().(*sync.WaitGroup)
	a.t = t
	Parallel(a, wg, workers, n, false)
	a.t = nil
	rangeAdapters.Put(a)
	waitGroups.Put(wg)
}

// funcTask runs a func as a RangeTask.
type funcTask func(lo, hi int)

func (f funcTask) RunRange(lo, hi int) { f(lo, hi) }

// ParallelFor runs fn over [0, n) split into contiguous chunks, one per
// available core, when n is large enough to pay for it; else inline.
func ParallelFor(n int, fn func(lo, hi int)) { ParallelItems(n, 1, fn) }

// ParallelItems is ParallelFor over n independent items of itemSize
// elements each, splitting only on item boundaries.
func ParallelItems(n, itemSize int, fn func(lo, hi int)) {
	if RangeWorkers(n, itemSize) <= 1 {
		fn(0, n)
		return
	}
	ParallelRun(funcTask(fn), n, itemSize)
}
