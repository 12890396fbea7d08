// The host grid loop of the jellyzoo host tier (zoo.kernels.host), included by the generated launch wrappers
// after the kernel source. jz_run_grid calls `thread_body` once per CUDA thread of a 1-D launch with
// blockIdx/threadIdx set, with denormal inputs and results flushed to zero (as `-ftz=true` on the GPU):
// - order 0: blocks and threads in increasing order; order 1: both in decreasing order (the strict launcher
//   runs both and requires equal results, which catches threads that depend on each other);
// - workers > 1 (builds with OpenMP): blocks spread over that many host threads.
#pragma once

#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace jz {

// Sets flush-to-zero and denormals-are-zero for the calling host thread; restores the old mode on destruction.
class FlushDenormals {
   public:
    FlushDenormals() {
#if defined(__x86_64__) || defined(__i386__)
        saved_ = _mm_getcsr();
        _mm_setcsr(saved_ | 0x8040u);  // FTZ (bit 15) | DAZ (bit 6)
#elif defined(__aarch64__)
        asm volatile("mrs %0, fpcr" : "=r"(saved_));
        asm volatile("msr fpcr, %0" ::"r"(saved_ | (1ull << 24)));  // FZ
#else
#error "jellyzoo host tier: cannot flush denormals on this architecture"
#endif
    }
    ~FlushDenormals() {
#if defined(__x86_64__) || defined(__i386__)
        _mm_setcsr(saved_);
#elif defined(__aarch64__)
        asm volatile("msr fpcr, %0" ::"r"(saved_));
#endif
    }
    FlushDenormals(const FlushDenormals&) = delete;
    FlushDenormals& operator=(const FlushDenormals&) = delete;

   private:
#if defined(__aarch64__)
    unsigned long long saved_;
#else
    unsigned int saved_;
#endif
};

template <typename Body>
inline void run_block(long long block, long long threads, int order, Body& thread_body) {
    FlushDenormals flush;
    block_index = uint3{static_cast<unsigned int>(block), 0, 0};
    for (long long k = 0; k < threads; ++k) {
        const long long thread = order == 0 ? k : threads - 1 - k;
        thread_index = uint3{static_cast<unsigned int>(thread), 0, 0};
        thread_body();
    }
}

template <typename Body>
inline void run_grid(long long blocks, long long threads, int order, int workers, Body thread_body) {
    const dim3 grid{static_cast<unsigned int>(blocks), 1, 1};
    const dim3 block{static_cast<unsigned int>(threads), 1, 1};
#if defined(_OPENMP)
    if (workers > 1 && blocks > 1) {
#pragma omp parallel for num_threads(workers) schedule(static)
        for (long long b = 0; b < blocks; ++b) {
            grid_extent = grid;
            block_extent = block;
            run_block(b, threads, 0, thread_body);
        }
        return;
    }
#else
    (void)workers;
#endif
    grid_extent = grid;
    block_extent = block;
    for (long long k = 0; k < blocks; ++k) run_block(order == 0 ? k : blocks - 1 - k, threads, order, thread_body);
}

// Kernel argument `index` of the packed argument block: one 8-byte cell per argument, the value at its start.
template <typename T>
inline T argument(const unsigned char* cells, int index) {
    static_assert(sizeof(T) <= 8, "kernel arguments are at most 8 bytes");
    T value;
    std::memcpy(&value, cells + 8 * index, sizeof(T));
    return value;
}

}  // namespace jz
