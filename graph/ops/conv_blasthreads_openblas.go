//go:build !purego

package ops

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

// convBLASThreads is the number of threads OpenBLAS uses for one call.
func convBLASThreads() int { return int(C.openblas_get_num_threads()) }

// convSetBLASThreads sets the number of threads OpenBLAS uses for one call.
func convSetBLASThreads(n int) { C.openblas_set_num_threads(C.int(n)) }

// convBLASAllocFree reports that a GEMM call allocates no Go memory.
const convBLASAllocFree = true
