"""Multi-step leaky integrate-and-fire with a per-channel learnable leak and soft reset.

For t = 1..T, from u_0 = 0 and s_0 = 0 (design note spikgru.md, section 1.3):

    u_t = alpha * u_{t-1} + I_t - threshold * s_{t-1}
    s_t = spike(u_t)            (or signed_spike)

evaluated in exactly that order ((alpha*u + I) - threshold*s) so that float32 results, and therefore
spikes sitting on the threshold, match the original code. The reset is not decayed. alpha = 1 gives the
IF neuron used after pooling in SpikGRU. Gradients flow to the current and to alpha (and through the reset).

Kernels (``lif_scan.cu``): one thread per neuron (b, c, spatial) walks the time axis with a float32 state;
spikes and grad_current come out in the current's dtype, grad_alpha in alpha's. Saved for backward (only when
a gradient will be needed, `needs_saving`): the float32 membrane u [T, N] (4 bytes per neuron-step) and alpha;
the backward kernel reads u_t and u_{t-1} from it instead of recomputing the scan and writes per neuron its
share of grad_alpha (sum over t of dL/du_t u_{t-1}), which is then summed over batch and space.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch

from zoo.kernels.backend import Backend, needs_saving, resolve_backend, state_dtype
from zoo.kernels.launch import empty, launch, neurons_per_thread
from zoo.kernels.spike import check_spike_parameters, signed_spike_reference, spike_reference

__all__ = ["lif_scan", "lif_scan_reference"]

SOURCE = "lif_scan.cu"
SpikeFn = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------------------------- checks


def check_lif_inputs(current: torch.Tensor, alpha: torch.Tensor) -> None:
    """Raise a ValueError/TypeError naming the problem unless `current`/`alpha` meet the `lif_scan` contract."""
    if not current.is_floating_point():
        raise TypeError(f"lif_scan: current must be a floating tensor, got {current.dtype}")
    if current.dim() < 3:
        raise ValueError(f"lif_scan: current must be [T, B, C, *spatial], got shape {tuple(current.shape)}")
    if current.shape[0] == 0:
        raise ValueError("lif_scan: current has T = 0 time steps")
    channels = current.shape[2]
    if alpha.dim() != 1 or alpha.shape[0] != channels:
        raise ValueError(
            f"lif_scan: alpha must have shape [C] = [{channels}] (axis 2 of current {tuple(current.shape)}), "
            f"got {tuple(alpha.shape)}"
        )
    if alpha.device != current.device:
        raise ValueError(f"lif_scan: alpha is on {alpha.device} but current is on {current.device}")


# ------------------------------------------------------------------------------------------------- reference


def lif_scan_reference(
    current: torch.Tensor,
    alpha: torch.Tensor,
    threshold: float = 1.0,
    signed: bool = False,
    gamma: float = 10.0,
    spike_fn: SpikeFn | None = None,
) -> torch.Tensor:
    """Pure-PyTorch LIF scan: a Python loop over time (the oracle and the CPU path).

    Args:
        current: input current I, [T, B, C, *spatial].
        alpha: leak per channel, [C], broadcast over batch and spatial axes.
        threshold, signed, gamma: spike function settings.
        spike_fn: replaces the spike function (tests use a smooth one for gradcheck).

    Returns:
        spikes s, same shape and dtype as `current`.
    """
    check_lif_inputs(current, alpha)
    if spike_fn is None:
        fire = signed_spike_reference if signed else spike_reference
        spike_fn = partial(fire, threshold=threshold, gamma=gamma)
    compute_dtype = state_dtype(current.dtype)
    leak = alpha.to(compute_dtype).view(-1, *([1] * (current.dim() - 3)))
    u = torch.zeros(current.shape[1:], dtype=compute_dtype, device=current.device)
    s = torch.zeros_like(u)
    spikes = []
    for current_t in current.to(compute_dtype).unbind(0):
        u = leak * u + current_t - threshold * s
        s = spike_fn(u)
        spikes.append(s)
    return torch.stack(spikes).to(current.dtype)


# ------------------------------------------------------------------------------------------ kernel launches


def _sizes(current: torch.Tensor) -> dict[str, int]:
    """steps, neurons (b, c, spatial), channels and spatial size of current [T, B, C, *spatial]."""
    steps, batch, channels = current.shape[:3]
    spatial = math.prod(current.shape[3:])
    return {"steps": steps, "neurons": batch * channels * spatial, "channels": channels, "spatial": spatial}


def _launch_forward(current: torch.Tensor, leak: torch.Tensor, threshold: float, signed: bool, save: bool):
    """(spikes [T, B, C, *spatial], float32 membrane [T, N] or [0]) with lif_scan.cu; inputs contiguous."""
    sizes = _sizes(current)
    spikes = empty(current.shape, current.dtype, current.device)
    membrane = empty((sizes["steps"], sizes["neurons"]) if save else (0,), torch.float32, current.device)
    threads = -(-sizes["neurons"] // neurons_per_thread(current.device))
    launch(SOURCE, "lif_scan_forward", threads=threads, dtype=current.dtype, current=current, alpha=leak,
           spikes=spikes, membrane=membrane if save else None, **sizes, threshold=threshold,
           signed_spikes=int(signed), save_membrane=int(save))  # fmt: skip
    return spikes, membrane


def _launch_backward(grad_spikes, membrane, leak, shape, threshold, gamma, signed):
    """(grad_current [T, B, C, *spatial], grad_alpha_partial [B, C, S]) with lif_scan.cu; inputs contiguous."""
    sizes = _sizes(grad_spikes)
    grad_current = empty(grad_spikes.shape, grad_spikes.dtype, grad_spikes.device)
    partial = empty((shape[1], sizes["channels"], sizes["spatial"]), torch.float32, grad_spikes.device)
    threads = -(-sizes["neurons"] // neurons_per_thread(grad_spikes.device))
    launch(SOURCE, "lif_scan_backward", threads=threads, dtype=grad_spikes.dtype, grad_spikes=grad_spikes,
           membrane=membrane, alpha=leak, grad_current=grad_current, grad_alpha_partial=partial, **sizes,
           threshold=threshold, gamma=gamma, signed_spikes=int(signed))  # fmt: skip
    return grad_current, partial


# ------------------------------------------------------------------------------------- PyTorch operators


@torch.library.custom_op("jellyzoo::lif_scan_forward", mutates_args=())
def lif_scan_op(
    current: torch.Tensor, alpha: torch.Tensor, threshold: float, signed: bool, gamma: float, save: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(spikes like `current`, float32 membrane [T, N] kept for backward when `save`, else [0])."""
    return _launch_forward(current.contiguous(), alpha.float().contiguous(), threshold, signed, save)


@lif_scan_op.register_fake
def _(current, alpha, threshold, signed, gamma, save):
    steps, neurons = current.shape[0], current[0].numel()
    membrane = current.new_empty((steps, neurons) if save else (0,), dtype=torch.float32)
    return torch.empty_like(current, memory_format=torch.contiguous_format), membrane


@torch.library.custom_op("jellyzoo::lif_scan_backward", mutates_args=())
def lif_scan_backward_op(
    grad_spikes: torch.Tensor, membrane: torch.Tensor, alpha: torch.Tensor, threshold: float, gamma: float, signed: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_current like `grad_spikes`, grad_alpha [C] in alpha's dtype)."""
    grad_current, partial = _launch_backward(
        grad_spikes.contiguous(), membrane, alpha.float().contiguous(), grad_spikes.shape, threshold, gamma, signed
    )
    return grad_current, partial.sum((0, 2)).to(alpha.dtype)


@lif_scan_backward_op.register_fake
def _(grad_spikes, membrane, alpha, threshold, gamma, signed):
    return torch.empty_like(grad_spikes, memory_format=torch.contiguous_format), torch.empty_like(alpha)


def _setup_lif_scan(ctx, inputs, output) -> None:
    current, alpha, threshold, signed, gamma, _ = inputs
    ctx.save_for_backward(output[1], alpha)
    ctx.settings = (threshold, gamma, signed, current.dtype)


def _lif_scan_backward(ctx, grad_spikes, _grad_membrane):
    membrane, alpha = ctx.saved_tensors
    threshold, gamma, signed, dtype = ctx.settings
    grad_current, grad_alpha = lif_scan_backward_op(grad_spikes.to(dtype), membrane, alpha, threshold, gamma, signed)
    return grad_current, grad_alpha, None, None, None, None


lif_scan_op.register_autograd(_lif_scan_backward, setup_context=_setup_lif_scan)


# ---------------------------------------------------------------------------------------------- dispatch


def lif_scan(
    current: torch.Tensor,
    alpha: torch.Tensor,
    threshold: float = 1.0,
    signed: bool = False,
    gamma: float = 10.0,
    *,
    backend: Backend = "auto",
) -> torch.Tensor:
    """Multi-step LIF neuron with per-channel leak and soft reset (binary or signed spikes).

    Args:
        current: input current, [T, B, C, *spatial] (time first), float32/float16/bfloat16.
        alpha: leak per channel, [C] (1.0 everywhere gives an IF neuron).
        threshold: firing threshold (> 0); the reset subtracts threshold * s_{t-1}.
        signed: emit {-1, 0, +1} spikes instead of {0, 1}.
        gamma: surrogate sharpness.
        backend: "auto", "torch", "cupy" or "cpu" (see `zoo.kernels.backend`).

    Returns:
        spikes, same shape and dtype as `current`.
    """
    check_spike_parameters(threshold, gamma)
    check_lif_inputs(current, alpha)
    if resolve_backend(backend, current, alpha) == "torch":
        return lif_scan_reference(current, alpha, threshold, signed, gamma)
    save = needs_saving(current, alpha)
    return lif_scan_op(current, alpha, float(threshold), bool(signed), float(gamma), save)[0]
