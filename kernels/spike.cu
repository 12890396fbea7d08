// Spike activations with the SpikGRU surrogate gradients (zoo.kernels.spike; design note spikgru.md, 1.2).
//
//   binary: s = 1[v >= th],                ds/dv ~ 1 / (1 + gamma (v - th)^2)
//   signed: s = 1[v >= th] - 1[v <= -th],  ds/dv ~ [1/(1 + gamma (v - th)^2) + 1/(1 + gamma (v + th)^2)] / c,
//           c = 1 + 1 / (1 + 4 gamma th^2)
//
// One thread per element, 64-bit element index. Inputs and outputs are in the tensor dtype (float, __half or
// __nv_bfloat16); every comparison and every surrogate is evaluated in float32. Entry points per dtype:
// spike_forward_{f32,f16,bf16} and spike_backward_{f32,f16,bf16}.

#include <cuda_fp16.h>
#include <cuda_bf16.h>

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}

// Spike of membrane v: +1 if v >= th; -1 if signed and v <= -th; else 0 (NaN gives 0).
__device__ __forceinline__ float spike_value(float v, float threshold, bool signed_spikes) {
    if (v >= threshold) return 1.0f;
    if (signed_spikes && v <= -threshold) return -1.0f;
    return 0.0f;
}

// 1 / (1 + gamma (v - centre)^2): the arctan-derivative bump centred on `centre`.
__device__ __forceinline__ float surrogate_bump(float v, float centre, float gamma) {
    const float distance = v - centre;
    return 1.0f / (1.0f + gamma * distance * distance);
}

// ds/dv of the binary spike, or of the signed spike normalised to peak 1 at v = +-th.
__device__ __forceinline__ float spike_surrogate(float v, float threshold, float gamma, bool signed_spikes) {
    if (!signed_spikes) return surrogate_bump(v, threshold, gamma);
    const float normaliser = 1.0f + 1.0f / (1.0f + 4.0f * gamma * threshold * threshold);
    return (surrogate_bump(v, threshold, gamma) + surrogate_bump(v, -threshold, gamma)) / normaliser;
}

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
