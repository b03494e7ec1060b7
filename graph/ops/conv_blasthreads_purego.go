//go:build purego

package ops

// convBLASThreads is the number of threads the BLAS uses for one call:
// gonum's pure-Go BLAS runs each call on the calling goroutine.
func convBLASThreads() int { return 1 }

// convSetBLASThreads is a no-op for gonum's BLAS.
func convSetBLASThreads(int) {}

// convBLASAllocFree reports that a GEMM call allocates no Go memory: gonum's
// splits large products across goroutines, allocating as it does.
const convBLASAllocFree = false
