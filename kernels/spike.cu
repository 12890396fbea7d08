// Spike activations with the SpikGRU surrogate gradients (zoo.kernels.spike; design note spikgru.md, 1.2).
//
//   binary: s = 1[v >= th],                ds/dv ~ 1 / (1 + gamma (v - th)^2)
//   signed: s = 1[v >= th] - 1[v <= -th],  ds/dv ~ [1/(1 + gamma (v - th)^2) + 1/(1 + gamma (v + th)^2)] / c,
//           c = 1 + 1 / (1 + 4 gamma th^2)
//
// One thread per element, 64-bit element index. Inputs and outputs are in the tensor dtype (float, __half or
// __nv_bfloat16); every comparison and every surrogate is evaluated in float32. Entry points per dtype:
// spike_forward_{f32,f16,bf16} and spike_backward_{f32,f16,bf16}.

#include "dtype_conversion.cuh"
#include "spike_functions.cuh"

__device__ __forceinline__ long long element_index() {
    return static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
}

// spikes[i] = spike(v[i]) for i < count.
template <typename T>
__device__ void spike_forward(const T* __restrict__ v, T* __restrict__ spikes, long long count, float threshold,
                              bool signed_spikes) {
    const long long i = element_index();
    if (i >= count) return;
    spikes[i] = from_float<T>(spike_value(to_float(v[i]), threshold, signed_spikes));
}

// grad_v[i] = grad_spikes[i] * surrogate(v[i]) for i < count.
template <typename T>
__device__ void spike_backward(const T* __restrict__ grad_spikes, const T* __restrict__ v, T* __restrict__ grad_v,
                               long long count, float threshold, float gamma, bool signed_spikes) {
    const long long i = element_index();
    if (i >= count) return;
    const float surrogate = spike_surrogate(to_float(v[i]), threshold, gamma, signed_spikes);
    grad_v[i] = from_float<T>(to_float(grad_spikes[i]) * surrogate);
}

#define SPIKE_ENTRY_POINTS(SUFFIX, T)                                                                            \
    extern "C" __global__ void spike_forward_##SUFFIX(const T* v, T* spikes, long long count, float threshold,   \
                                                      long long signed_spikes) {                                 \
        spike_forward<T>(v, spikes, count, threshold, signed_spikes != 0);                                       \
    }                                                                                                            \
    extern "C" __global__ void spike_backward_##SUFFIX(const T* grad_spikes, const T* v, T* grad_v,              \
                                                       long long count, float threshold, float gamma,            \
                                                       long long signed_spikes) {                                \
        spike_backward<T>(grad_spikes, v, grad_v, count, threshold, gamma, signed_spikes != 0);                  \
    }

SPIKE_ENTRY_POINTS(f32, float)
SPIKE_ENTRY_POINTS(f16, __half)
SPIKE_ENTRY_POINTS(bf16, __nv_bfloat16)
