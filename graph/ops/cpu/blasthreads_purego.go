//go:build purego

package cpu

// blasThreads is the number of threads the BLAS uses for one call:
// gonum's pure-Go BLAS runs each call on the calling goroutine.
func blasThreads() int { return 1 }

// setBLASThreads is a no-op for gonum's BLAS.
func setBLASThreads(int) {}

// BLASAllocFree reports that a GEMM call allocates no Go memory: gonum's
// splits large products across goroutines, allocating as it does.
const BLASAllocFree = false
