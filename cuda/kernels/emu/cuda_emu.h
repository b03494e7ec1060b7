// cuda_emu.h: what ops.cu needs of CUDA C++, for the host compiler, so that
// the kernels' own source runs on the CPU (emu.cpp; the cuda package's
// TestKernelsEmulated). One block runs at a time, its threads as fibers of
// one OS thread: __shared__ becomes static storage (the block's shared
// memory), __syncthreads a switch back to the scheduler, which resumes the
// threads only when every live one of the block has reached it.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct emu_dim3 {
    unsigned int x, y, z;
};
extern emu_dim3 threadIdx, blockIdx, blockDim, gridDim;

void __syncthreads();

struct alignas(16) float4 {
    float x, y, z, w;
};

// Arithmetic the kernels name explicitly. emu.cpp is compiled with
// -ffp-contract=off, so a*b+c is two roundings unless written fmaf, as
// __fmul_rn/__fadd_rn promise on the device.
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline unsigned int __float_as_uint(float f) {
    unsigned int u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float __uint_as_float(unsigned int u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline double __hiloint2double(int hi, int lo) {
    uint64_t u = ((uint64_t)(uint32_t)hi << 32) | (uint32_t)lo;
    double d;
    std::memcpy(&d, &u, 8);
    return d;
}
using std::exp;
using std::fmaf;
using std::fmaxf;
using std::log;
using std::sqrt;
// CUDA's min and max take mixed integer types (by value: a decltype of
// the conditional would be a reference to a parameter).
template <class A, class B>
inline typename std::common_type<A, B>::type min(A a, B b) { return a < b ? a : b; }
template <class A, class B>
inline typename std::common_type<A, B>::type max(A a, B b) { return a > b ? a : b; }
