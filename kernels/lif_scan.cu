// Multi-step LIF with per-channel leak and soft reset (zoo.kernels.lif_scan; design note spikgru.md, 1.3).
//
// Layout: current, spikes, grad_spikes, grad_current are contiguous [T, N] in the tensor dtype, where the
// neuron index n in [0, N) runs over (b, c, spatial) of [B, C, S]; the channel of neuron n is (n / S) % C. alpha is float32 [C]. One thread per neuron walks the time axis with its state in float32
// registers.
//
// Forward, for t = 1..T from u_0 = 0, s_0 = 0, rounded exactly as the PyTorch reference ((alpha u + I) - th s,
// no FMA contraction, so float32 spikes equal the reference bit for bit; CuPy compiles with -ftz=true, which
// only treats values below 1.2e-38 as zero):
//     u_t = alpha u_{t-1} + I_t - th s_{t-1},    s_t = spike(u_t)
// The float32 membrane u [T, N] is written when the backward pass will need it.
//
// Backward in reverse time, from dL/du_{T+1} = 0 (s_t also feeds u_{t+1} through the reset -th s_t):
//     dL/ds_t = grad_spikes_t - th dL/du_{t+1}
//     dL/du_t = dL/ds_t surrogate(u_t) + alpha dL/du_{t+1}
//     grad_current_t = dL/du_t,   grad_alpha_partial[n] = sum_t dL/du_t u_{t-1}   (u_0 = 0)
// The caller sums grad_alpha_partial [B, C, S] over B and S.
//
// Entry points per dtype: lif_scan_forward_{f32,f16,bf16} and lif_scan_backward_{f32,f16,bf16}.

#include "dtype_conversion.cuh"
#include "spike_functions.cuh"

__device__ __forceinline__ long long neuron_index() {
    return static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
}

// Channel (n / S) % C of neuron n, in 32-bit arithmetic when the sizes allow: a 64-bit division costs several
// times a 32-bit one, on the GPU (emulated) and on the CPU alike, and it is the dominant per-neuron cost.
__device__ __forceinline__ long long channel_of(long long n, long long spatial, long long channels) {
    if (n <= 0xffffffffLL && spatial <= 0xffffffffLL && channels <= 0xffffffffLL) {
        const unsigned int row = static_cast<unsigned int>(n) / static_cast<unsigned int>(spatial);
        return row % static_cast<unsigned int>(channels);
    }
    return (n / spatial) % channels;
}

// Neurons one thread walks through time: 1 on the GPU (one thread per neuron, coalesced across the warp). The
// host's fast build sets more (zoo.kernels.host), so that each time step touches a run of adjacent neurons:
// memory is then read in order instead of one cache line per step per neuron.
#ifndef JZ_NEURONS_PER_THREAD
#define JZ_NEURONS_PER_THREAD 1
#endif
constexpr int kNeuronsPerThread = JZ_NEURONS_PER_THREAD;

// The thread's first neuron and how many neurons (1..kNeuronsPerThread) it owns; count 0 past the end.
__device__ __forceinline__ int neuron_run(long long neurons, long long& first) {
    first = neuron_index() * kNeuronsPerThread;
    const long long left = neurons - first;
    return left <= 0 ? 0 : (left < kNeuronsPerThread ? static_cast<int>(left) : kNeuronsPerThread);
}

template <typename T>
__device__ void lif_scan_forward(const T* __restrict__ current, const float* __restrict__ alpha,
                                 T* __restrict__ spikes, float* __restrict__ membrane, long long steps,
                                 long long neurons, long long channels, long long spatial,
                                 float threshold, bool signed_spikes, bool save_membrane) {
    long long first;
    const int count = neuron_run(neurons, first);
    float leak[kNeuronsPerThread] = {}, u[kNeuronsPerThread] = {}, s[kNeuronsPerThread] = {};
    for (int k = 0; k < count; ++k) leak[k] = alpha[channel_of(first + k, spatial, channels)];
    for (long long t = 0; t < steps; ++t) {
        const long long row = t * neurons + first;
        for (int k = 0; k < count; ++k) {
            const float charged = __fadd_rn(__fmul_rn(leak[k], u[k]), to_float(current[row + k]));
            u[k] = __fsub_rn(charged, __fmul_rn(threshold, s[k]));
            s[k] = spike_value(u[k], threshold, signed_spikes);
            spikes[row + k] = from_float<T>(s[k]);
            if (save_membrane) membrane[row + k] = u[k];
        }
    }
}

template <typename T>
__device__ void lif_scan_backward(const T* __restrict__ grad_spikes, const float* __restrict__ membrane,
                                  const float* __restrict__ alpha, T* __restrict__ grad_current,
                                  float* __restrict__ grad_alpha_partial, long long steps, long long neurons,
                                  long long channels, long long spatial, float threshold, float gamma,
                                  bool signed_spikes) {
    long long first;
    const int count = neuron_run(neurons, first);
    float leak[kNeuronsPerThread] = {}, u[kNeuronsPerThread] = {};
    float grad_u_next[kNeuronsPerThread] = {}, grad_alpha[kNeuronsPerThread] = {};  // dL/du_{t+1}, sum dL/du_t u_{t-1}
    for (int k = 0; k < count; ++k) {
        leak[k] = alpha[channel_of(first + k, spatial, channels)];
        u[k] = membrane[(steps - 1) * neurons + first + k];  // u_t
    }
    for (long long t = steps - 1; t >= 0; --t) {
        const long long row = t * neurons + first;
        for (int k = 0; k < count; ++k) {
            const float u_previous = t > 0 ? membrane[row - neurons + k] : 0.0f;
            const float grad_s = to_float(grad_spikes[row + k]) - threshold * grad_u_next[k];
            const float grad_u =
                grad_s * spike_surrogate(u[k], threshold, gamma, signed_spikes) + leak[k] * grad_u_next[k];
            grad_current[row + k] = from_float<T>(grad_u);
            grad_alpha[k] += grad_u * u_previous;
            grad_u_next[k] = grad_u;
            u[k] = u_previous;
        }
    }
    for (int k = 0; k < count; ++k) grad_alpha_partial[first + k] = grad_alpha[k];
}

#define LIF_SCAN_ENTRY_POINTS(SUFFIX, T)                                                                         \
    extern "C" __global__ void lif_scan_forward_##SUFFIX(                                                        \
        const T* current, const float* alpha, T* spikes, float* membrane, long long steps, long long neurons,    \
        long long channels, long long spatial, float threshold, long long signed_spikes,                         \
        long long save_membrane) {                                                                               \
        lif_scan_forward<T>(current, alpha, spikes, membrane, steps, neurons, channels, spatial, threshold,      \
                            signed_spikes != 0, save_membrane != 0);                                             \
    }                                                                                                            \
    extern "C" __global__ void lif_scan_backward_##SUFFIX(                                                       \
        const T* grad_spikes, const float* membrane, const float* alpha, T* grad_current,                        \
        float* grad_alpha_partial, long long steps, long long neurons, long long channels, long long spatial,    \
        float threshold, float gamma, long long signed_spikes) {                                                 \
        lif_scan_backward<T>(grad_spikes, membrane, alpha, grad_current, grad_alpha_partial, steps, neurons,     \
                             channels, spatial, threshold, gamma, signed_spikes != 0);                           \
    }

LIF_SCAN_ENTRY_POINTS(f32, float)
LIF_SCAN_ENTRY_POINTS(f16, __half)
LIF_SCAN_ENTRY_POINTS(bf16, __nv_bfloat16)
