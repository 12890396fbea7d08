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

CuPy implementation (``sparch_scan.cu``):
- without recurrence, one kernel launch for the whole sequence (one thread per neuron loops over T with
  u, w, s in registers; the backward runs in reverse time, one thread per neuron, in one launch);
- with recurrence, per step one GEMM ``s_{t-1} @ V~`` plus one fused elementwise kernel; the backward
  runs per step one fused kernel plus one GEMM ``dI_{t+1} @ V~.T``, and the weight gradient is one GEMM
  at the end.
Saved for backward: the membrane u and adaptation w sequences in float32 (the recurrence cannot be
inverted stably: dividing by alpha amplifies rounding by up to 1.22 per step), the spikes, and with
recurrence the recurrent currents ``s_{t-1} @ V~``. Half-precision inputs keep their states in float32;
the recurrent product runs in the input dtype (as under autocast), in the reference too.
"""

from __future__ import annotations

import math

import torch

from zoo.kernels.backend import Backend, resolve_backend, state_dtype
from zoo.kernels.cupy_runtime import elementwise_grid, kernel_name, launch

__all__ = ["boxcar_spike", "sparch_scan", "sparch_scan_reference"]

SOURCE = "sparch_scan.cu"


def boxcar_spike(x: torch.Tensor) -> torch.Tensor:
    """Spikes 1[x > 0] of `x` = u - threshold (any shape); gradient 1 on -0.5 < x <= 0.5, else 0 (DECOLLE boxcar)."""
    fired = (x > 0).to(x.dtype)
    window = ((x > -0.5) & (x <= 0.5)).to(x.dtype)
    return fired + (x - x.detach()) * window


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
        backend: "auto", "torch" or "cupy" (see `zoo.kernels.backend`).

    Returns:
        (spikes, membrane), each [T, B, H] in the dtype of `current`; gradients flow through both (the
        spikes with the boxcar surrogate) to the current, the parameters, the initial states and V~.
    """
    check_sparch_inputs(current, alpha, u0, s0, (beta, a, b, w0), recurrent, threshold)
    given = [t for t in (current, alpha, u0, s0, beta, a, b, w0, recurrent) if t is not None]
    if resolve_backend(backend, *given) == "cupy":
        return SparchScanCuPy.apply(current, alpha, u0, s0, beta, a, b, w0, recurrent, float(threshold), bool(spiking))
    return sparch_scan_reference(current, alpha, u0, s0, beta, a, b, w0, recurrent, threshold, spiking)


class SparchScanCuPy(torch.autograd.Function):
    """`sparch_scan` on CUDA tensors with the kernels of ``sparch_scan.cu`` (see the module docstring)."""

    @staticmethod
    def forward(ctx, current, alpha, u0, s0, beta, a, b, w0, recurrent, threshold, spiking):
        ctx.set_materialize_grads(False)
        current = current.contiguous()
        steps, batch, hidden = current.shape
        neurons = batch * hidden
        adaptive = beta is not None
        f32 = {"dtype": torch.float32, "device": current.device}
        alpha_, u0_, s0_ = (t.detach().float().contiguous() for t in (alpha, u0, s0))
        if adaptive:
            beta_, a_, b_, w0_ = (t.detach().float().contiguous() for t in (beta, a, b, w0))
        else:
            beta_, a_, b_, w0_ = alpha_, alpha_, alpha_, u0_
        spikes = torch.empty_like(current)
        membrane = torch.empty(steps, batch, hidden, **f32)
        adaptation = torch.empty(steps, batch, hidden, **f32) if adaptive else membrane
        flags = [float(threshold), int(adaptive), int(spiking)]
        grid, block = elementwise_grid(neurons)
        common = [alpha_, beta_, a_, b_, u0_, w0_, s0_, spikes, membrane, adaptation]
        if recurrent is None:
            weight, drive = None, current
            name = kernel_name("sparch_scan_forward", current.dtype)
            launch(SOURCE, name, current.device, grid, block, [current, *common, steps, neurons, hidden, *flags])
        else:
            weight = recurrent.detach().to(current.dtype).contiguous()
            drive = torch.empty_like(current)
            name = kernel_name("sparch_step_forward", current.dtype)
            previous = s0_.to(current.dtype)
            for t in range(steps):
                torch.mm(previous, weight, out=drive[t])
                args = [current, drive, *common, t, neurons, hidden, *flags]
                launch(SOURCE, name, current.device, grid, block, args)
                previous = spikes[t]
        ctx.save_for_backward(current, drive, spikes, membrane, adaptation, alpha_, beta_, a_, b_, u0_, w0_, s0_)
        ctx.weight = weight
        ctx.config = (adaptive, recurrent is not None, float(threshold), bool(spiking))
        ctx.recurrent_dtype = None if recurrent is None else recurrent.dtype
        return spikes, membrane.to(current.dtype)

    @staticmethod
    def backward(ctx, grad_spikes, grad_membrane):
        current, drive, spikes, membrane, adaptation, alpha, beta, a, b, u0, w0, s0 = ctx.saved_tensors
        adaptive, has_recurrent, threshold, spiking = ctx.config
        steps, batch, hidden = current.shape
        neurons = batch * hidden
        if grad_spikes is None and grad_membrane is None:
            return (None,) * 11
        grad_s = current if grad_spikes is None else grad_spikes.to(current.dtype).contiguous()
        grad_u = current if grad_membrane is None else grad_membrane.to(current.dtype).contiguous()
        f32 = {"dtype": torch.float32, "device": current.device}
        grad_current = torch.empty_like(current)
        delta_u = torch.zeros(batch, hidden, **f32)
        delta_w = torch.zeros(batch, hidden, **f32)
        partials = torch.zeros(4, batch, hidden, **f32)
        grid, block = elementwise_grid(neurons)
        states = [alpha, beta, a, b, u0, w0, s0, grad_current, delta_u, delta_w, partials]
        tail = [int(grad_spikes is not None), int(grad_membrane is not None), threshold, int(adaptive), int(spiking)]
        if not has_recurrent:
            name = kernel_name("sparch_scan_backward", current.dtype)
            args = [grad_s, grad_u, current, spikes, membrane, adaptation, *states, steps, neurons, hidden, *tail]
            launch(SOURCE, name, current.device, grid, block, args)
        else:
            name = kernel_name("sparch_step_backward", current.dtype)
            recurrent_grad = torch.zeros(batch, hidden, dtype=current.dtype, device=current.device)
            weight_t = ctx.weight.t()
            for t in reversed(range(steps)):
                if t + 1 < steps:
                    torch.mm(grad_current[t + 1], weight_t, out=recurrent_grad)
                args = [grad_s, grad_u, current, drive, spikes, membrane, adaptation, *states, recurrent_grad, t]
                args += [int(t + 1 < steps), neurons, hidden, *tail]
                launch(SOURCE, name, current.device, grid, block, args)
        grad_alpha, grad_beta, grad_a, grad_b = partials.sum(1).unbind(0)
        grad_u0 = alpha * delta_u
        grad_s0 = -alpha * delta_u
        grad_w0 = None
        if adaptive:
            grad_u0 = grad_u0 + a * delta_w
            grad_s0 = grad_s0 + b * delta_w
            grad_w0 = beta * delta_w
        grad_recurrent = None
        if has_recurrent:
            grad_s0 = grad_s0 + (grad_current[0] @ ctx.weight.t()).float()
            previous = torch.cat([s0.to(current.dtype).unsqueeze(0), spikes[:-1]]).reshape(-1, hidden)
            grad_recurrent = (previous.t() @ grad_current.reshape(-1, hidden)).to(ctx.recurrent_dtype)
        if not adaptive:
            grad_beta = grad_a = grad_b = None
        return (
            grad_current, grad_alpha, grad_u0, grad_s0, grad_beta, grad_a, grad_b, grad_w0, grad_recurrent, None, None
        )
