// SpikGRU recurrence, one time step per launch (design note spikgru.md, sections 1.5 and 5.3).
//
// The recurrent product rec = s_{t-1} @ U^T (forward) and the carry dRec_{t+1} @ U (backward) are GEMMs run by
// PyTorch between launches; these kernels do the elementwise rest, one thread per (b, h).
//
// Layouts (all contiguous, row-major):
//   proj_t, dproj_t : [B, (gates + 1) H], blocks (z, r, i) for gates = 2 and (z, i) for gates = 1, input dtype
//   rec, drec_t     : [B, (gates + 1) H] float32
//   everything else : [B, H] float32, or [H] float32 for alpha and b_ui
// Entry points: spikgru_forward_{f32,f16,bf16} and spikgru_backward_{f32,f16,bf16}, by the dtype of proj.

#include "dtype_conversion.cuh"
#include "spike_functions.cuh"

// sigmoid(x) = 1 / (1 + exp(-x)), the formula of PyTorch's float sigmoid.
__device__ __forceinline__ float sigmoid(float x) { return __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-x))); }

// Forward of step t. Reads the states of step t-1 (zero when has_prev = 0) and writes those of step t; the
// state pointers may be ping-pong buffers (inference) or the slices of the saved [T, B, H] tensors (training).
// z_out, r_out and c_out (c = rec_i + b_ui) are written only when save_gates = 1 (r_out, c_out only for gates = 2).
template <typename Storage>
__device__ __forceinline__ void spikgru_forward(const Storage* __restrict__ proj_t, const float* __restrict__ rec,
                                                const float* __restrict__ alpha, const float* __restrict__ b_ui,
                                                const float* s_prev, const float* i_prev, const float* v_prev,
                                                float* s_out, float* i_out, float* v_out, Storage* __restrict__ spikes_t,
                                                float* __restrict__ z_out, float* __restrict__ r_out,
                                                float* __restrict__ c_out, long long batch, long long hidden,
                                                long long gates, long long has_prev, long long is_signed,
                                                long long save_gates, float threshold) {
    long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= batch * hidden) return;
    long long b = index / hidden;
    long long h = index - b * hidden;
    long long row = b * (gates + 1) * hidden;

    float s_before = has_prev ? s_prev[index] : 0.0f;
    float i_before = has_prev ? i_prev[index] : 0.0f;
    float v_before = has_prev ? v_prev[index] : 0.0f;

    float z = sigmoid(__fadd_rn(to_float(proj_t[row + h]), rec[row + h]));
    long long i_block = row + gates * hidden + h;
    float c = __fadd_rn(rec[i_block], b_ui[h]);
    float candidate = c;
    float r = 1.0f;
    if (gates == 2) {
        r = sigmoid(__fadd_rn(to_float(proj_t[row + hidden + h]), rec[row + hidden + h]));
        candidate = __fmul_rn(r, c);
    }
    // i = (alpha * i + p_i) + r * (rec_i + b_ui)
    float i = __fadd_rn(__fadd_rn(__fmul_rn(alpha[h], i_before), to_float(proj_t[i_block])), candidate);
    // v = (z * v + (1 - z) * i) - threshold * s_prev
    float v = __fsub_rn(__fadd_rn(__fmul_rn(z, v_before), __fmul_rn(__fsub_rn(1.0f, z), i)),
                        __fmul_rn(threshold, s_before));
    float s = spike_value(v, threshold, is_signed != 0);

    s_out[index] = s;
    i_out[index] = i;
    v_out[index] = v;
    spikes_t[index] = from_float<Storage>(s);
    if (save_gates) {
        z_out[index] = z;
        if (gates == 2) {
            r_out[index] = r;
            c_out[index] = c;
        }
    }
}

// Backward of step t (reverse time). With a_z = p_z + rec_z, c = rec_i + b_ui:
//   gs   = grad_out_t + carry - threshold * gv_{t+1}      (carry = dRec_{t+1} @ U; both terms absent at t = T-1)
//   gv_t = gs * surrogate(v_t) + gv_{t+1} * z_{t+1}
//   gi_t = gv_t * (1 - z_t) + gi_{t+1} * alpha
//   da_z = gv_t * (v_{t-1} - i_t) * z_t (1 - z_t);  da_r = gi_t * c_t * r_t (1 - r_t);  dc = gi_t * r_t
//   dproj_t = [da_z, (da_r,) gi_t],  drec_t = [da_z, (da_r,) dc]
// gv and gi are carried in place (each thread reads and writes only its own element). acc_alpha and acc_bui
// accumulate gi_t * i_{t-1} and dc over time per (b, h); the host sums them over b.
template <typename Storage>
__device__ __forceinline__ void spikgru_backward(
    const Storage* __restrict__ grad_out_t, const float* __restrict__ carry, float* gv, float* gi,
    const float* __restrict__ z_t, const float* __restrict__ z_next, const float* __restrict__ v_t,
    const float* __restrict__ v_prev, const float* __restrict__ i_t, const float* __restrict__ i_prev,
    const float* __restrict__ r_t, const float* __restrict__ c_t, const float* __restrict__ alpha,
    Storage* __restrict__ dproj_t, float* __restrict__ drec_t, float* __restrict__ acc_alpha,
    float* __restrict__ acc_bui, long long batch, long long hidden, long long gates, long long has_next,
    long long has_prev, long long is_signed, float threshold, float gamma) {
    long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= batch * hidden) return;
    long long b = index / hidden;
    long long h = index - b * hidden;
    long long row = b * (gates + 1) * hidden;

    float v = v_t[index];
    float surrogate = spike_surrogate(v, threshold, gamma, is_signed != 0);

    float gs = to_float(grad_out_t[index]);
    float gv_new = 0.0f;
    float gi_new = 0.0f;
    if (has_next) {
        float gv_next = gv[index];
        gs += carry[index] - threshold * gv_next;
        gv_new = gv_next * z_next[index];
        gi_new = gi[index] * alpha[h];
    }
    gv_new += gs * surrogate;
    float z = z_t[index];
    gi_new += gv_new * (1.0f - z);

    float i_now = i_t[index];
    float v_before = has_prev ? v_prev[index] : 0.0f;
    float da_z = gv_new * (v_before - i_now) * z * (1.0f - z);
    float dc = gi_new;
    dproj_t[row + h] = from_float<Storage>(da_z);
    drec_t[row + h] = da_z;
    if (gates == 2) {
        float r = r_t[index];
        float da_r = gi_new * c_t[index] * r * (1.0f - r);
        dc = gi_new * r;
        dproj_t[row + hidden + h] = from_float<Storage>(da_r);
        drec_t[row + hidden + h] = da_r;
    }
    dproj_t[row + gates * hidden + h] = from_float<Storage>(gi_new);
    drec_t[row + gates * hidden + h] = dc;

    if (has_prev) acc_alpha[index] += gi_new * i_prev[index];
    acc_bui[index] += dc;
    gv[index] = gv_new;
    gi[index] = gi_new;
}

#define SPIKGRU_ENTRY_POINTS(SUFFIX, STORAGE)                                                                    \
    extern "C" __global__ void spikgru_forward_##SUFFIX(                                                        \
        const STORAGE* proj_t, const float* rec, const float* alpha, const float* b_ui, const float* s_prev,     \
        const float* i_prev, const float* v_prev, float* s_out, float* i_out, float* v_out, STORAGE* spikes_t,   \
        float* z_out, float* r_out, float* c_out, long long batch, long long hidden, long long gates,            \
        long long has_prev, long long is_signed, long long save_gates, float threshold) {                        \
        spikgru_forward<STORAGE>(proj_t, rec, alpha, b_ui, s_prev, i_prev, v_prev, s_out, i_out, v_out,          \
                                 spikes_t, z_out, r_out, c_out, batch, hidden, gates, has_prev, is_signed,       \
                                 save_gates, threshold);                                                         \
    }                                                                                                            \
    extern "C" __global__ void spikgru_backward_##SUFFIX(                                                       \
        const STORAGE* grad_out_t, const float* carry, float* gv, float* gi, const float* z_t,                   \
        const float* z_next, const float* v_t, const float* v_prev, const float* i_t, const float* i_prev,       \
        const float* r_t, const float* c_t, const float* alpha, STORAGE* dproj_t, float* drec_t,                 \
        float* acc_alpha, float* acc_bui, long long batch, long long hidden, long long gates, long long has_next, \
        long long has_prev, long long is_signed, float threshold, float gamma) {        \
        spikgru_backward<STORAGE>(grad_out_t, carry, gv, gi, z_t, z_next, v_t, v_prev, i_t, i_prev, r_t, c_t,    \
                                  alpha, dproj_t, drec_t, acc_alpha, acc_bui, batch, hidden, gates, has_next,    \
                                  has_prev, is_signed, threshold, gamma);                     \
    }

SPIKGRU_ENTRY_POINTS(f32, float)
SPIKGRU_ENTRY_POINTS(f16, __half)
SPIKGRU_ENTRY_POINTS(bf16, __nv_bfloat16)
