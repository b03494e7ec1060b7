// Package kernels holds the CUDA C sources of the cuda package and the PTX
// generated from them (committed: the build machine of the default build
// has no nvcc; `make cuda-deps` installs CUDA 11.8's nvcc from Debian), and
// how that PTX is made: for the lowest compute capability the kernels need,
// so that the driver JIT-compiles the one module for any GPU since Volta.
package kernels

//go:generate go run ./ptxgen ops.cu ops.ptx
