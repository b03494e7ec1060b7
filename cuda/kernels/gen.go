// Package kernels holds the CUDA C sources of the cuda package and the PTX
// generated from them (committed: the build machine of the default build
// has no nvcc; `make cuda-deps` installs CUDA 11.8's nvcc from Debian).
package kernels

//go:generate nvcc -arch=sm_90 -ptx -fmad=false -O3 -o ops.ptx ops.cu
