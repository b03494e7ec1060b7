//go:build !purego

package cpu

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

// blasThreads is the number of threads OpenBLAS uses for one call.
func blasThreads() int { return int(C.openblas_get_num_threads()) }

// setBLASThreads sets the number of threads OpenBLAS uses for one call.
func setBLASThreads(n int) { C.openblas_set_num_threads(C.int(n)) }

// BLASAllocFree reports that a GEMM call allocates no Go memory.
const BLASAllocFree = true
