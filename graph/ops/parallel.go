package ops

import (
	"runtime"
	"sync"
)

// This file holds the element-wise kernels' way onto the cores: the worker
// pool of conv_parallel.go, so that a kernel spawns no goroutine.
//
// An op keeps its kernel's arguments in a field (a struct with a run method)
// and hands a pointer to it to parallelRun, which allocates nothing; ops that
// are not hot paths can still pass a func to parallelFor or parallelItems
// (one allocation for the func value, no goroutine).

// minGrain is the least work (in elements) worth a worker of its own.
const minGrain = 1 << 14

// rangeTask is element-wise work over [lo, hi).
type rangeTask interface{ runRange(lo, hi int) }

// rangeWorkers is how many workers n items of itemSize elements each deserve.
func rangeWorkers(n, itemSize int) int {
	workers := runtime.GOMAXPROCS(0)
	if total := n * itemSize; workers > total/minGrain {
		workers = total / minGrain
	}
	return max(1, min(workers, n))
}

// rangeAdapter runs a rangeTask as a convTask.
type rangeAdapter struct{ t rangeTask }

func (a *rangeAdapter) run(_, lo, hi int) { a.t.runRange(lo, hi) }

var rangeAdapters = sync.Pool{New: func() any { return new(rangeAdapter) }}
var waitGroups = sync.Pool{New: func() any { return new(sync.WaitGroup) }}

// parallelRun runs t over [0, n) items of itemSize elements each, split into
// contiguous chunks over the pool when the work pays for it, else inline.
// Pass a pointer that outlives the call (an op field) and it allocates nothing.
func parallelRun(t rangeTask, n, itemSize int) {
	workers := rangeWorkers(n, itemSize)
	if workers <= 1 {
		t.runRange(0, n)
		return
	}
	a := rangeAdapters.Get().(*rangeAdapter)
	wg := waitGroups.Get().(*sync.WaitGroup)
	a.t = t
	convParallel(a, wg, workers, n, false)
	a.t = nil
	rangeAdapters.Put(a)
	waitGroups.Put(wg)
}

// funcTask runs a func as a rangeTask.
type funcTask func(lo, hi int)

func (f funcTask) runRange(lo, hi int) { f(lo, hi) }

// parallelFor runs fn over [0, n) split into contiguous chunks, one per
// available core, when n is large enough to pay for it; else inline.
func parallelFor(n int, fn func(lo, hi int)) { parallelItems(n, 1, fn) }

// parallelItems is parallelFor over n independent items of itemSize
// elements each, splitting only on item boundaries.
func parallelItems(n, itemSize int, fn func(lo, hi int)) {
	if rangeWorkers(n, itemSize) <= 1 {
		fn(0, n)
		return
	}
	parallelRun(funcTask(fn), n, itemSize)
}
