// Host stand-in for the CUDA built-ins the jellyzoo kernels use (zoo.kernels.host), force-included before a
// `.cu` file so that g++ compiles the file unmodified:
// - __global__, __device__, __forceinline__ (__restrict__ is already a g++ keyword);
// - blockIdx, blockDim, threadIdx, gridDim: read-only, per host thread, set by jz_run_grid's loop over the grid
//   (1-D launches: y = z = 0, extents 1);
// - __fadd_rn, __fsub_rn, __fmul_rn, __fdiv_rn: one IEEE operation each, behind an optimisation barrier so
//   that a build allowing FMA contraction cannot fuse them (as on the GPU); plain expressions may be fused there;
// - the float math functions of <cmath> (expf, ...), which CUDA also provides on the device.
// Nothing else exists: shared memory, barriers, atomics, warp intrinsics or any other intrinsic used by a kernel
// fail to compile here, so a kernel that is not plain one-thread-per-element code cannot escape the host tier.
#pragma once

#include <cmath>

#define __global__ __attribute__((used))
#define __device__
#define __forceinline__ inline __attribute__((always_inline))

struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
};

namespace jz {
// Per host thread (OpenMP spreads blocks over threads); initial-exec TLS is a plain register-relative access
// instead of a __tls_get_addr call per read.
#define JZ_THREAD_LOCAL thread_local __attribute__((tls_model("initial-exec")))
inline JZ_THREAD_LOCAL uint3 block_index{0, 0, 0};
inline JZ_THREAD_LOCAL uint3 thread_index{0, 0, 0};
inline JZ_THREAD_LOCAL dim3 block_extent{1, 1, 1};
inline JZ_THREAD_LOCAL dim3 grid_extent{1, 1, 1};
#undef JZ_THREAD_LOCAL

// The value of x, forced through a register so the compiler cannot contract it with neighbouring operations
// (in the build that allows contraction, JZ_FP_CONTRACT; the others compile with -ffp-contract=off, where a
// barrier would only stop vectorisation).
inline float rounded(float x) {
#if !defined(JZ_FP_CONTRACT)
#elif defined(__x86_64__) || defined(__i386__)
    asm volatile("" : "+x"(x));
#elif defined(__aarch64__)
    asm volatile("" : "+w"(x));
#else
#error "jellyzoo host tier: no optimisation barrier for this architecture"
#endif
    return x;
}
}  // namespace jz

#define blockIdx (static_cast<const uint3&>(::jz::block_index))
#define threadIdx (static_cast<const uint3&>(::jz::thread_index))
#define blockDim (static_cast<const dim3&>(::jz::block_extent))
#define gridDim (static_cast<const dim3&>(::jz::grid_extent))

inline float __fadd_rn(float a, float b) { return jz::rounded(a + b); }
inline float __fsub_rn(float a, float b) { return jz::rounded(a - b); }
inline float __fmul_rn(float a, float b) { return jz::rounded(a * b); }
inline float __fdiv_rn(float a, float b) { return jz::rounded(a / b); }
