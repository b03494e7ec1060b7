package ops

import (
	"runtime"
	"sync"
)

// minGrain is the least work (in elements) worth a goroutine of its own.
const minGrain = 1 << 14

// parallelFor runs fn over [0, n) split into contiguous chunks, one per
// available core, when n is large enough to pay for it; else inline.
func parallelFor(n int, fn func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if workers > n/minGrain {
		workers = n / minGrain
	}
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

// parallelItems is parallelFor over n independent items of itemSize
// elements each, splitting only on item boundaries.
func parallelItems(n, itemSize int, fn func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if total := n * itemSize; workers > total/minGrain {
		workers = total / minGrain
	}
	if workers > n {
		workers = n
	}
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}
