"""The sparch neuron recurrences LIF, RLIF, adLIF and RadLIF (design note sparch.md, sections 1.2-1.6).

Per step t = 0..T-1, from the given initial states u_{-1}, w_{-1}, s_{-1} (sparch draws them U[0, 1)):

    w_t = beta * w_{t-1} + a * u_{t-1} + b * s_{t-1}                       (adaptive: adLIF, RadLIF)
    u_t = alpha * (u_{t-1} - s_{t-1}) + (1 - alpha) * (I_t [+ s_{t-1} @ V~] [- w_t])
    s_t = 1[u_t - threshold > 0]       surrogate ds/du = 1[-0.5 < u_t - threshold <= 0.5]  (boxcar)

The bracketed terms are present for the adaptive and the recurrent (RLIF, RadLIF) variants. The reset is
inside the leak and subtracts s (1), not the threshold. `V~` is used as ``s @ V~`` (row vector times
matrix, not ``nn.Linear``'s ``s @ V~.T``); the caller zeroes its diagonal. Parameters arrive already
clamped. Every float32 operation runs in the original's order, so spikes match it bit for bit.
``spiking=False`` gives sparch's non-spiking readout: s_t = 0, so u_t = alpha * u_{t-1} + (1 - alpha) * I_t.

Kernels (``sparch_scan.cu``, run by CuPy on CUDA and by the host build on CPU):
- without recurrence, one kernel launch for the whole sequence (one thread per neuron loops over T with
  u, w, s in registers; the backward runs in reverse time, one thread per neuron, in one launch);
- with recurrence, per step one GEMM ``s_{t-1} @ V~`` plus one fused elementwise kernel; the backward
  runs per step one fused kernel plus one GEMM ``dI_{t+1} @ V~.T``, and the weight gradient is one GEMM
  at the end.
Saved for backward: the float32 membrane u and adaptation w (the recurrence cannot be inverted stably:
dividing by alpha amplifies rounding by up to 1.22 per step), the spikes, and with recurrence the recurrent
currents ``s_{t-1} @ V~``. The forward produces all of them anyway (u is an output; w, s and the drive are
read back by the next step), so unlike the other ops there is nothing to skip when no gradient is needed.
Half-precision inputs keep their states in float32; the recurrent product runs in the input dtype (as under
autocast), in the reference too.
"""

from __future__ import annotations

import math

import torch

from zoo.kernels.backend import Backend, resolve_backend, state_dtype
from zoo.kernels.launch import empty, launch

__all__ = ["boxcar_spike", "sparch_scan", "sparch_scan_reference"]

SOURCE = "sparch_scan.cu"


# ---------------------------------------------------------------------------------------------- checks


def check_sparch_inputs(
    current: torch.Tensor,
    alpha: torch.Tensor,
    u0: torch.Tensor,
    s0: torch.Tensor,
    adaptation: tuple[torch.Tensor | None, ...],
    recurrent: torch.Tensor | None,
    threshold: float,
) -> None:
    """Raise a ValueError/TypeError naming the problem unless the inputs meet the `sparch_scan` contract."""
    if not current.is_floating_point():
        raise TypeError(f"sparch_scan: current must be a floating tensor, got {current.dtype}")
    if current.dim() != 3 or current.shape[0] == 0:
        raise ValueError(f"sparch_scan: current must be [T, B, H] with T >= 1, got shape {tuple(current.shape)}")
    if not math.isfinite(threshold):
        raise ValueError(f"sparch_scan: threshold must be finite, got {threshold!r}")
    batch, hidden = current.shape[1:]
    given = [tensor is not None for tensor in adaptation]
    if any(given) and not all(given):
        raise ValueError("sparch_scan: beta, a, b and w0 must be given together (adaptive neurons) or not at all")
    vectors = {"alpha": alpha}
    states = {"u0": u0, "s0": s0}
    if all(given):
        beta, a, b, w0 = adaptation
        vectors.update(beta=beta, a=a, b=b)
        states["w0"] = w0
    for name, tensor in vectors.items():
        if tuple(tensor.shape) != (hidden,):
            raise ValueError(f"sparch_scan: {name} must be [H] = [{hidden}], got {tuple(tensor.shape)}")
    for name, tensor in states.items():
        if tuple(tensor.shape) != (batch, hidden):
            raise ValueError(f"sparch_scan: {name} must be [B, H] = [{batch}, {hidden}], got {tuple(tensor.shape)}")
    tensors = {**vectors, **states}
    if recurrent is not None:
        if tuple(recurrent.shape) != (hidden, hidden):
            expected = f"[H, H] = [{hidden}, {hidden}]"
            raise ValueError(f"sparch_scan: recurrent must be {expected}, got {tuple(recurrent.shape)}")
        tensors["recurrent"] = recurrent
    for name, tensor in tensors.items():
        if tensor.device != current.device:
            raise ValueError(f"sparch_scan: {name} is on {tensor.device} but current is on {current.device}")


# ------------------------------------------------------------------------------------------------- reference


def boxcar_spike(x: torch.Tensor) -> torch.Tensor:
    """Spikes 1[x > 0] of `x` = u - threshold (any shape); gradient 1 on -0.5 < x <= 0.5, else 0 (DECOLLE boxcar).

    Without autograd (inference, or an `x` that needs no gradient) it returns the step alone.
    """
    fired = (x > 0).to(x.dtype)
    if not (x.requires_grad and torch.is_grad_enabled()):
        return fired
    window = ((x > -0.5) & (x <= 0.5)).to(x.dtype)
    return fired + (x - x.detach()) * window


def sparch_scan_reference(
    current: torch.Tensor,
    alpha: torch.Tensor,
    u0: torch.Tensor,
    s0: torch.Tensor,
    beta: torch.Tensor | None = None,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    w0: torch.Tensor | None = None,
    recurrent: torch.Tensor | None = None,
    threshold: float = 1.0,
    spiking: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pure-PyTorch sparch recurrence: a Python loop over time (the oracle and the CPU path).

    Args and returns as `sparch_scan`.
    """
    check_sparch_inputs(current, alpha, u0, s0, (beta, a, b, w0), recurrent, threshold)
    compute_dtype = state_dtype(current.dtype)
    alpha = alpha.to(compute_dtype)
    one_minus_alpha = 1 - alpha
    adaptive = beta is not None
    if adaptive:
        beta, a, b, w = beta.to(compute_dtype), a.to(compute_dtype), b.to(compute_dtype), w0.to(compute_dtype)
    weight = None if recurrent is None else recurrent.to(current.dtype)
    u, s = u0.to(compute_dtype), s0.to(compute_dtype)
    spikes, membranes = [], []
    for current_t in current.to(compute_dtype).unbind(0):
        drive = current_t
        if weight is not None:
            drive = drive + (s.to(current.dtype) @ weight).to(compute_dtype)
        if adaptive:
            w = beta * w + a * u + b * s
            drive = drive - w
        u = alpha * (u - s) + one_minus_alpha * drive
        s = boxcar_spike(u - threshold) if spiking else torch.zeros_like(u)
        spikes.append(s)
        membranes.append(u)
    return torch.stack(spikes).to(current.dtype), torch.stack(membranes).to(current.dtype)


# ------------------------------------------------------------------------------------------ kernel launches


def _launch_forward(current, alpha, beta, a, b, u0, w0, s0, weight, threshold: float, spiking: bool):
    """(spikes [T, B, H] in current's dtype; float32 membrane u and adaptation w [T, B, H]; drive I + r).

    Tensors contiguous; parameters and states float32; beta, a, b, w0 None for non-adaptive neurons (then
    adaptation is [0]); weight V~ in current's dtype or None (then drive is [0]: the current itself).
    """
    steps, batch, hidden = current.shape
    f32 = {"dtype": torch.float32, "device": current.device}
    adaptive = beta is not None
    spikes = empty(current.shape, current.dtype, current.device)
    membrane = empty(current.shape, **f32)
    adaptation = empty(current.shape if adaptive else (0,), **f32)
    state = {
        "alpha": alpha,
        "beta": beta,
        "adapt_a": a,
        "adapt_b": b,
        "u0": u0,
        "w0": w0,
        "s0": s0,
        "spikes": spikes,
        "membrane": membrane,
        "adaptation": adaptation if adaptive else None,
        "neurons": batch * hidden,
        "hidden": hidden,
        "threshold": threshold,
        "adaptive": int(adaptive),
        "spiking": int(spiking),
    }
    run = {"threads": batch * hidden, "dtype": current.dtype}
    if weight is None:
        launch(SOURCE, "sparch_scan_forward", **run, current=current, steps=steps, **state)
        return spikes, membrane, adaptation, current.new_empty(0)
    drive = empty(current.shape, current.dtype, current.device)
    previous = s0.to(current.dtype)
    for t in range(steps):
        # A fresh product, then copied, as in the reference: with several threads a GEMM writing straight into
        # an unaligned slice (out=drive[t]) can sum in another order, and the spikes must match bit for bit.
        drive[t] = previous @ weight
        launch(SOURCE, "sparch_step_forward", **run, current=current, recurrent_current=drive, t=t, **state)
        previous = spikes[t]
    return spikes, membrane, adaptation, drive


def _launch_backward(
    grad_spikes,
    grad_membrane,
    current,
    drive,
    spikes,
    membrane,
    adaptation,
    alpha,
    beta,
    a,
    b,
    u0,
    w0,
    s0,
    weight,
    threshold: float,
    spiking: bool,
):
    """(grad_current [T, B, H], dL/du and dL/dw leaving step 0 [B, H], parameter partials [4, B, H]).

    grad_spikes / grad_membrane in current's dtype or None (no gradient reaches that output); the rest as
    `_launch_forward` takes and returns them. Partials are d alpha, d beta, d a, d b per (b, h).
    """
    steps, batch, hidden = current.shape
    f32 = {"dtype": torch.float32, "device": current.device}
    adaptive = beta is not None
    grad_current = empty(current.shape, current.dtype, current.device)
    delta_u, delta_w = torch.zeros(batch, hidden, **f32), torch.zeros(batch, hidden, **f32)
    partials = torch.zeros(4, batch, hidden, **f32)
    state = {
        "grad_spikes": grad_spikes,
        "grad_membrane": grad_membrane,
        "current": current,
        "spikes": spikes,
        "membrane": membrane,
        "adaptation": adaptation if adaptive else None,
        "alpha": alpha,
        "beta": beta,
        "adapt_a": a,
        "adapt_b": b,
        "u0": u0,
        "w0": w0,
        "s0": s0,
        "grad_current": grad_current,
        "delta_u": delta_u,
        "delta_w": delta_w,
        "partials": partials,
        "neurons": batch * hidden,
        "hidden": hidden,
        "has_grad_spikes": int(grad_spikes is not None),
        "has_grad_membrane": int(grad_membrane is not None),
        "threshold": threshold,
        "adaptive": int(adaptive),
        "spiking": int(spiking),
    }
    run = {"threads": batch * hidden, "dtype": current.dtype}
    if weight is None:
        launch(SOURCE, "sparch_scan_backward", **run, steps=steps, **state)
        return grad_current, delta_u, delta_w, partials
    recurrent_grad = empty((batch, hidden), current.dtype, current.device)
    for t in reversed(range(steps)):
        has_next = t + 1 < steps
        if has_next:
            torch.mm(grad_current[t + 1], weight.t(), out=recurrent_grad)
        launch(
            SOURCE,
            "sparch_step_backward",
            **run,
            recurrent_current=drive,
            recurrent_grad=recurrent_grad if has_next else None,
            t=t,
            has_recurrent_grad=int(has_next),
            **state,
        )
    return grad_current, delta_u, delta_w, partials


# ------------------------------------------------------------------------------------- PyTorch operators


def _float32(*tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
    return [None if t is None else t.to(torch.float32).contiguous() for t in tensors]


@torch.library.custom_op("jellyzoo::sparch_scan_forward", mutates_args=())
def sparch_scan_op(
    current: torch.Tensor,
    alpha: torch.Tensor,
    u0: torch.Tensor,
    s0: torch.Tensor,
    beta: torch.Tensor | None,
    a: torch.Tensor | None,
    b: torch.Tensor | None,
    w0: torch.Tensor | None,
    recurrent: torch.Tensor | None,
    threshold: float,
    spiking: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(spikes in current's dtype, float32 membrane u, float32 adaptation w or [0], drive I + s @ V~ or [0])."""
    weight = None if recurrent is None else recurrent.to(current.dtype).contiguous()
    return _launch_forward(current.contiguous(), *_float32(alpha, beta, a, b, u0, w0, s0), weight, threshold, spiking)


@sparch_scan_op.register_fake
def _(current, alpha, u0, s0, beta, a, b, w0, recurrent, threshold, spiking):
    adaptation = current.new_empty(current.shape if beta is not None else (0,), dtype=torch.float32)
    drive = current.new_empty(current.shape if recurrent is not None else (0,))
    return current.new_empty(current.shape), current.new_empty(current.shape, dtype=torch.float32), adaptation, drive


@torch.library.custom_op("jellyzoo::sparch_scan_backward", mutates_args=())
def sparch_scan_backward_op(
    grad_spikes: torch.Tensor | None,
    grad_membrane: torch.Tensor | None,
    current: torch.Tensor,
    drive: torch.Tensor,
    spikes: torch.Tensor,
    membrane: torch.Tensor,
    adaptation: torch.Tensor,
    alpha: torch.Tensor,
    u0: torch.Tensor,
    s0: torch.Tensor,
    beta: torch.Tensor | None,
    a: torch.Tensor | None,
    b: torch.Tensor | None,
    w0: torch.Tensor | None,
    recurrent: torch.Tensor | None,
    threshold: float,
    spiking: bool,
) -> tuple[
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
]:
    """Gradients of (current, alpha, u0, s0, beta, a, b, w0, recurrent) in their dtypes; [0] for absent inputs."""
    dtype = current.dtype
    grad_s, grad_u = (None if g is None else g.to(dtype).contiguous() for g in (grad_spikes, grad_membrane))
    alpha_, beta_, a_, b_, u0_, w0_, s0_ = _float32(alpha, beta, a, b, u0, w0, s0)
    weight = None if recurrent is None else recurrent.to(dtype).contiguous()
    grad_current, delta_u, delta_w, partials = _launch_backward(
        grad_s,
        grad_u,
        current.contiguous(),
        drive,
        spikes,
        membrane,
        adaptation,
        alpha_,
        beta_,
        a_,
        b_,
        u0_,
        w0_,
        s0_,
        weight,
        threshold,
        spiking,
    )
    grad_alpha, grad_beta, grad_a, grad_b = (partial.sum(0) for partial in partials)
    grad_u0, grad_s0 = alpha_ * delta_u, -alpha_ * delta_u
    grad_w0 = grad_recurrent = None
    if beta is not None:
        grad_u0 = grad_u0 + a_ * delta_w
        grad_s0 = grad_s0 + b_ * delta_w
        grad_w0 = beta_ * delta_w
    if recurrent is not None:
        grad_s0 = grad_s0 + (grad_current[0] @ weight.t()).float()
        previous = torch.cat([s0_.to(dtype).unsqueeze(0), spikes[:-1]]).reshape(-1, current.shape[2])
        grad_recurrent = (previous.t() @ grad_current.reshape(-1, current.shape[2])).to(recurrent.dtype)
    grads = (grad_current, grad_alpha, grad_u0, grad_s0, grad_beta, grad_a, grad_b, grad_w0, grad_recurrent)
    like = (current, alpha, u0, s0, beta, a, b, w0, recurrent)
    return tuple(current.new_empty(0) if t is None else g.to(t.dtype) for g, t in zip(grads, like, strict=True))


@sparch_scan_backward_op.register_fake
def _(
    grad_spikes,
    grad_membrane,
    current,
    drive,
    spikes,
    membrane,
    adaptation,
    alpha,
    u0,
    s0,
    beta,
    a,
    b,
    w0,
    recurrent,
    threshold,
    spiking,
):
    like = (current, alpha, u0, s0, beta, a, b, w0, recurrent)
    return tuple(current.new_empty(0) if t is None else torch.empty_like(t) for t in like)


def _setup_sparch_scan(ctx, inputs, output) -> None:
    current, alpha, u0, s0, beta, a, b, w0, recurrent, threshold, spiking = inputs
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(current, alpha, u0, s0, beta, a, b, w0, recurrent, *output)
    ctx.settings = (threshold, spiking)


def _sparch_scan_backward(ctx, grad_spikes, grad_membrane, *_grad_saved):
    current, alpha, u0, s0, beta, a, b, w0, recurrent, spikes, membrane, adaptation, drive = ctx.saved_tensors
    if grad_spikes is None and grad_membrane is None:
        return (None,) * 11
    grads = sparch_scan_backward_op(
        grad_spikes,
        grad_membrane,
        current,
        drive,
        spikes,
        membrane,
        adaptation,
        alpha,
        u0,
        s0,
        beta,
        a,
        b,
        w0,
        recurrent,
        *ctx.settings,
    )
    present = (current, alpha, u0, s0, beta, a, b, w0, recurrent)
    return (*(None if t is None else g for g, t in zip(grads, present, strict=True)), None, None)


sparch_scan_op.register_autograd(_sparch_scan_backward, setup_context=_setup_sparch_scan)


# ---------------------------------------------------------------------------------------------- dispatch


def sparch_scan(
    current: torch.Tensor,
    alpha: torch.Tensor,
    u0: torch.Tensor,
    s0: torch.Tensor,
    beta: torch.Tensor | None = None,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    w0: torch.Tensor | None = None,
    recurrent: torch.Tensor | None = None,
    threshold: float = 1.0,
    spiking: bool = True,
    *,
    backend: Backend = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """sparch LIF / RLIF / adLIF / RadLIF neurons (or the non-spiking readout) over T steps.

    Args:
        current: normalised input current I = norm(W x), [T, B, H] (time first), float32/float16/bfloat16.
        alpha: membrane leak per neuron, [H] (already clamped).
        u0, s0: initial membrane and spike state, [B, H] (s0 need not be binary).
        beta, a, b: adaptation leak, subthreshold coupling and spike-triggered adaptation, [H] each; with
            w0 ([B, H]) for adLIF/RadLIF, all None for LIF/RLIF.
        recurrent: V~, [H, H], used as s_{t-1} @ V~ (RLIF/RadLIF), or None.
        threshold: firing threshold; the reset subtracts s (1) whatever the threshold.
        spiking: False gives the non-spiking leaky readout (no threshold, no reset; spikes are all zero).
        backend: "auto", "torch", "cupy" or "cpu" (see `zoo.kernels.backend`).

    Returns:
        (spikes, membrane), each [T, B, H] in the dtype of `current`; gradients flow through both (the
        spikes with the boxcar surrogate) to the current, the parameters, the initial states and V~.
    """
    check_sparch_inputs(current, alpha, u0, s0, (beta, a, b, w0), recurrent, threshold)
    given = [t for t in (current, alpha, u0, s0, beta, a, b, w0, recurrent) if t is not None]
    if resolve_backend(backend, *given) == "torch":
        return sparch_scan_reference(current, alpha, u0, s0, beta, a, b, w0, recurrent, threshold, spiking)
    spikes, membrane, _, _ = sparch_scan_op(
        current, alpha, u0, s0, beta, a, b, w0, recurrent, float(threshold), bool(spiking)
    )
    return spikes, membrane.to(current.dtype)
