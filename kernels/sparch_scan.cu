// sparch LIF / RLIF / adLIF / RadLIF neurons and the non-spiking readout (see sparch_scan.py).
//
// Layout: sequences are [T, B, H] contiguous, states [B, H], per-neuron parameters [H]; one thread owns
// one neuron n = b * H + h. States, parameters and saved sequences (membrane u, adaptation w) are float32;
// current, recurrent current, spikes and gradients use the input dtype (float, __half or __nv_bfloat16).
//
// Forward step, in the original's float32 operation order (the __f*_rn intrinsics forbid FMA contraction,
// so spikes sitting near the threshold match the PyTorch reference bit for bit):
//   w = (beta * w + a * u) + b * s                               (adaptive)
//   u = alpha * (u - s) + (1 - alpha) * ((I [+ r]) [- w])
//   s = 1[u - threshold > 0]                                     (0 when not spiking)
// Backward step (reverse time; du, dw arrive holding dL/du_{t+1}, dL/dw_{t+1} and leave holding step t's):
//   ds = g_s - alpha * du + b * dw + [dI_{t+1} @ V~^T]
//   du = g_u + 1[-0.5 < u_t - threshold <= 0.5] * ds + alpha * du + a * dw
//   dw = -(1 - alpha) * du + beta * dw
//   dI_t = (1 - alpha) * du
//   d alpha += du * ((u_{t-1} - s_{t-1}) - ((I [+ r]) [- w_t])), d beta += dw * w_{t-1},
//   d a += dw * u_{t-1}, d b += dw * s_{t-1}   (per-neuron partial sums, reduced over B by the caller)

#include "dtype_conversion.cuh"

namespace {

struct Neuron {
    float alpha, one_minus_alpha, beta, a, b;
};

__device__ __forceinline__ Neuron load_neuron(const float* alpha, const float* beta, const float* adapt_a,
                                              const float* adapt_b, long long h, bool adaptive) {
    Neuron p;
    p.alpha = alpha[h];
    p.one_minus_alpha = __fsub_rn(1.0f, p.alpha);
    p.beta = adaptive ? beta[h] : 0.0f;
    p.a = adaptive ? adapt_a[h] : 0.0f;
    p.b = adaptive ? adapt_b[h] : 0.0f;
    return p;
}

// One forward step: updates u, w, s in place from the drive I (or I + r).
__device__ __forceinline__ void step_forward(const Neuron& p, float drive, float threshold, bool adaptive, bool spiking,
                                             float& u, float& w, float& s) {
    if (adaptive) {
        w = __fadd_rn(__fadd_rn(__fmul_rn(p.beta, w), __fmul_rn(p.a, u)), __fmul_rn(p.b, s));
        drive = __fsub_rn(drive, w);
    }
    u = __fadd_rn(__fmul_rn(p.alpha, __fsub_rn(u, s)), __fmul_rn(p.one_minus_alpha, drive));
    s = (spiking && __fsub_rn(u, threshold) > 0.0f) ? 1.0f : 0.0f;
}

struct Grads {
    float du, dw, d_alpha, d_beta, d_a, d_b;
};

// One backward step at time t; returns dL/dI_t. `drive` is I_t (or I_t + r_t) as in the forward.
__device__ __forceinline__ float step_backward(const Neuron& p, float grad_s, float grad_u, float recurrent_grad,
                                               float drive, float u_t, float w_t, float u_prev, float w_prev,
                                               float s_prev, float threshold, bool adaptive, bool spiking, Grads& g) {
    const float ds = grad_s - p.alpha * g.du + p.b * g.dw + recurrent_grad;
    const float x = u_t - threshold;
    const bool window = spiking && x > -0.5f && x <= 0.5f;
    const float du = grad_u + (window ? ds : 0.0f) + p.alpha * g.du + p.a * g.dw;
    const float dw = adaptive ? -p.one_minus_alpha * du + p.beta * g.dw : 0.0f;
    const float input = adaptive ? drive - w_t : drive;
    g.d_alpha += du * ((u_prev - s_prev) - input);
    if (adaptive) {
        g.d_beta += dw * w_prev;
        g.d_a += dw * u_prev;
        g.d_b += dw * s_prev;
    }
    g.du = du;
    g.dw = dw;
    return p.one_minus_alpha * du;
}

template <typename scalar_t>
__device__ __forceinline__ void load_previous(long long t, long long n, long long neurons, const scalar_t* spikes,
                                              const float* membrane, const float* adaptation, const float* u0,
                                              const float* w0, const float* s0, bool adaptive, float& u, float& w,
                                              float& s) {
    if (t == 0) {
        u = u0[n];
        w = adaptive ? w0[n] : 0.0f;
        s = s0[n];
    } else {
        const long long i = (t - 1) * neurons + n;
        u = membrane[i];
        w = adaptive ? adaptation[i] : 0.0f;
        s = to_float(spikes[i]);
    }
}

__device__ __forceinline__ void store_grads(const Grads& g, long long n, long long neurons, float* delta_u,
                                            float* delta_w, float* partials) {
    delta_u[n] = g.du;
    delta_w[n] = g.dw;
    partials[n] = g.d_alpha;
    partials[neurons + n] = g.d_beta;
    partials[2 * neurons + n] = g.d_a;
    partials[3 * neurons + n] = g.d_b;
}

// Whole sequence, no recurrence: one thread per neuron loops over T with its state in registers.
template <typename scalar_t>
__device__ void scan_forward(const scalar_t* current, const float* alpha, const float* beta, const float* adapt_a,
                             const float* adapt_b, const float* u0, const float* w0, const float* s0,
                             scalar_t* spikes, float* membrane, float* adaptation, long long steps,
                             long long neurons, long long hidden, float threshold, bool adaptive, bool spiking) {
    const long long n = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (n >= neurons) return;
    const Neuron p = load_neuron(alpha, beta, adapt_a, adapt_b, n % hidden, adaptive);
    float u = u0[n], w = adaptive ? w0[n] : 0.0f, s = s0[n];
    for (long long t = 0; t < steps; ++t) {
        const long long i = t * neurons + n;
        step_forward(p, to_float(current[i]), threshold, adaptive, spiking, u, w, s);
        spikes[i] = from_float<scalar_t>(s);
        membrane[i] = u;
        if (adaptive) adaptation[i] = w;
    }
}

template <typename scalar_t>
__device__ void scan_backward(const scalar_t* grad_spikes, const scalar_t* grad_membrane, const scalar_t* current,
                              const scalar_t* spikes, const float* membrane, const float* adaptation,
                              const float* alpha, const float* beta, const float* adapt_a, const float* adapt_b,
                              const float* u0, const float* w0, const float* s0, scalar_t* grad_current,
                              float* delta_u, float* delta_w, float* partials, long long steps, long long neurons,
                              long long hidden, bool has_grad_spikes, bool has_grad_membrane, float threshold,
                              bool adaptive, bool spiking) {
    const long long n = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (n >= neurons) return;
    const Neuron p = load_neuron(alpha, beta, adapt_a, adapt_b, n % hidden, adaptive);
    Grads g = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    for (long long t = steps - 1; t >= 0; --t) {
        const long long i = t * neurons + n;
        float u_prev, w_prev, s_prev;
        load_previous(t, n, neurons, spikes, membrane, adaptation, u0, w0, s0, adaptive, u_prev, w_prev, s_prev);
        const float grad_s = has_grad_spikes ? to_float(grad_spikes[i]) : 0.0f;
        const float grad_u = has_grad_membrane ? to_float(grad_membrane[i]) : 0.0f;
        const float w_t = adaptive ? adaptation[i] : 0.0f;
        const float d_input = step_backward(p, grad_s, grad_u, 0.0f, to_float(current[i]), membrane[i], w_t, u_prev,
                                            w_prev, s_prev, threshold, adaptive, spiking, g);
        grad_current[i] = from_float<scalar_t>(d_input);
    }
    store_grads(g, n, neurons, delta_u, delta_w, partials);
}

// One step t with recurrence; the caller has written r_t = s_{t-1} @ V~ into recurrent_current[t].
template <typename scalar_t>
__device__ void step_forward_at(const scalar_t* current, const scalar_t* recurrent_current, const float* alpha,
                                const float* beta, const float* adapt_a, const float* adapt_b, const float* u0,
                                const float* w0, const float* s0, scalar_t* spikes, float* membrane,
                                float* adaptation, long long t, long long neurons, long long hidden, float threshold,
                                bool adaptive, bool spiking) {
    const long long n = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (n >= neurons) return;
    const Neuron p = load_neuron(alpha, beta, adapt_a, adapt_b, n % hidden, adaptive);
    float u, w, s;
    load_previous(t, n, neurons, spikes, membrane, adaptation, u0, w0, s0, adaptive, u, w, s);
    const long long i = t * neurons + n;
    const float drive = __fadd_rn(to_float(current[i]), to_float(recurrent_current[i]));
    step_forward(p, drive, threshold, adaptive, spiking, u, w, s);
    spikes[i] = from_float<scalar_t>(s);
    membrane[i] = u;
    if (adaptive) adaptation[i] = w;
}

// One reverse step t with recurrence; delta_u, delta_w and partials carry the running state between launches,
// recurrent_grad holds dI_{t+1} @ V~^T (valid when has_recurrent_grad).
template <typename scalar_t>
__device__ void step_backward_at(const scalar_t* grad_spikes, const scalar_t* grad_membrane, const scalar_t* current,
                                 const scalar_t* recurrent_current, const scalar_t* spikes, const float* membrane,
                                 const float* adaptation, const float* alpha, const float* beta,
                                 const float* adapt_a, const float* adapt_b, const float* u0, const float* w0,
                                 const float* s0, scalar_t* grad_current, float* delta_u, float* delta_w,
                                 float* partials, const scalar_t* recurrent_grad, long long t,
                                 bool has_recurrent_grad, long long neurons, long long hidden, bool has_grad_spikes,
                                 bool has_grad_membrane, float threshold, bool adaptive, bool spiking) {
    const long long n = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (n >= neurons) return;
    const Neuron p = load_neuron(alpha, beta, adapt_a, adapt_b, n % hidden, adaptive);
    Grads g = {delta_u[n], delta_w[n], partials[n], partials[neurons + n], partials[2 * neurons + n],
               partials[3 * neurons + n]};
    float u_prev, w_prev, s_prev;
    load_previous(t, n, neurons, spikes, membrane, adaptation, u0, w0, s0, adaptive, u_prev, w_prev, s_prev);
    const long long i = t * neurons + n;
    const float grad_s = has_grad_spikes ? to_float(grad_spikes[i]) : 0.0f;
    const float grad_u = has_grad_membrane ? to_float(grad_membrane[i]) : 0.0f;
    const float rec = has_recurrent_grad ? to_float(recurrent_grad[n]) : 0.0f;
    const float w_t = adaptive ? adaptation[i] : 0.0f;
    const float drive = __fadd_rn(to_float(current[i]), to_float(recurrent_current[i]));
    const float d_input = step_backward(p, grad_s, grad_u, rec, drive, membrane[i], w_t, u_prev, w_prev, s_prev,
                                        threshold, adaptive, spiking, g);
    grad_current[i] = from_float<scalar_t>(d_input);
    store_grads(g, n, neurons, delta_u, delta_w, partials);
}

}  // namespace

#define SPARCH_ENTRY_POINTS(suffix, scalar_t)                                                                       \
    extern "C" __global__ void sparch_scan_forward_##suffix(                                                        \
        const scalar_t* current, const float* alpha, const float* beta, const float* adapt_a, const float* adapt_b, \
        const float* u0, const float* w0, const float* s0, scalar_t* spikes, float* membrane, float* adaptation,   \
        long long steps, long long neurons, long long hidden, float threshold, long long adaptive,                 \
        long long spiking) {                                                                                        \
        scan_forward<scalar_t>(current, alpha, beta, adapt_a, adapt_b, u0, w0, s0, spikes, membrane, adaptation,    \
                               steps, neurons, hidden, threshold, adaptive != 0, spiking != 0);                     \
    }                                                                                                               \
    extern "C" __global__ void sparch_scan_backward_##suffix(                                                       \
        const scalar_t* grad_spikes, const scalar_t* grad_membrane, const scalar_t* current,                        \
        const scalar_t* spikes, const float* membrane, const float* adaptation, const float* alpha,                 \
        const float* beta, const float* adapt_a, const float* adapt_b, const float* u0, const float* w0,            \
        const float* s0, scalar_t* grad_current, float* delta_u, float* delta_w, float* partials, long long steps,  \
        long long neurons, long long hidden, long long has_grad_spikes, long long has_grad_membrane,                \
        float threshold, long long adaptive, long long spiking) {                                                   \
        scan_backward<scalar_t>(grad_spikes, grad_membrane, current, spikes, membrane, adaptation, alpha, beta,     \
                                adapt_a, adapt_b, u0, w0, s0, grad_current, delta_u, delta_w, partials, steps,      \
                                neurons, hidden, has_grad_spikes != 0, has_grad_membrane != 0, threshold,           \
                                adaptive != 0, spiking != 0);                                                       \
    }                                                                                                               \
    extern "C" __global__ void sparch_step_forward_##suffix(                                                        \
        const scalar_t* current, const scalar_t* recurrent_current, const float* alpha, const float* beta,          \
        const float* adapt_a, const float* adapt_b, const float* u0, const float* w0, const float* s0,              \
        scalar_t* spikes, float* membrane, float* adaptation, long long t, long long neurons, long long hidden,     \
        float threshold, long long adaptive, long long spiking) {                                                   \
        step_forward_at<scalar_t>(current, recurrent_current, alpha, beta, adapt_a, adapt_b, u0, w0, s0, spikes,    \
                                  membrane, adaptation, t, neurons, hidden, threshold, adaptive != 0,               \
                                  spiking != 0);                                                                    \
    }                                                                                                               \
    extern "C" __global__ void sparch_step_backward_##suffix(                                                       \
        const scalar_t* grad_spikes, const scalar_t* grad_membrane, const scalar_t* current,                        \
        const scalar_t* recurrent_current, const scalar_t* spikes, const float* membrane, const float* adaptation,  \
        const float* alpha, const float* beta, const float* adapt_a, const float* adapt_b, const float* u0,         \
        const float* w0, const float* s0, scalar_t* grad_current, float* delta_u, float* delta_w, float* partials,  \
        const scalar_t* recurrent_grad, long long t, long long has_recurrent_grad, long long neurons,               \
        long long hidden, long long has_grad_spikes, long long has_grad_membrane, float threshold,                  \
        long long adaptive, long long spiking) {                                                                    \
        step_backward_at<scalar_t>(grad_spikes, grad_membrane, current, recurrent_current, spikes, membrane,        \
                                   adaptation, alpha, beta, adapt_a, adapt_b, u0, w0, s0, grad_current, delta_u,    \
                                   delta_w, partials, recurrent_grad, t, has_recurrent_grad != 0, neurons, hidden,  \
                                   has_grad_spikes != 0, has_grad_membrane != 0, threshold, adaptive != 0,          \
                                   spiking != 0);                                                                   \
    }

SPARCH_ENTRY_POINTS(f32, float)
SPARCH_ENTRY_POINTS(f16, __half)
SPARCH_ENTRY_POINTS(bf16, __nv_bfloat16)
