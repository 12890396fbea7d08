// Spike functions and the SpikGRU surrogate gradients, shared by the kernels (zoo.kernels.spike; design note
// spikgru.md, 1.2). Thresholds are inclusive; NaN membranes give no spike.
//   binary: s = 1[v >= th],                ds/dv ~ 1 / (1 + gamma (v - th)^2)
//   signed: s = 1[v >= th] - 1[v <= -th],  ds/dv ~ [1/(1 + gamma (v - th)^2) + 1/(1 + gamma (v + th)^2)] / c,
//           c = 1 + 1 / (1 + 4 gamma th^2)
#pragma once

// Spike of membrane v: +1 if v >= th; -1 if signed and v <= -th; else 0. Written without branches (comparisons
// as 0/1 values): spikes are data-dependent, and a mispredicted branch per neuron-step dominated the host build.
__device__ __forceinline__ float spike_value(float v, float threshold, bool signed_spikes) {
    const float positive = static_cast<float>(v >= threshold);
    const float negative = static_cast<float>(signed_spikes & (v <= -threshold));
    return positive - negative;
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
