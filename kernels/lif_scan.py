"""Multi-step leaky integrate-and-fire with a per-channel learnable leak and soft reset.

For t = 1..T, from u_0 = 0 and s_0 = 0 (design note spikgru.md, section 1.3):

    u_t = alpha * u_{t-1} + I_t - threshold * s_{t-1}
    s_t = spike(u_t)            (or signed_spike)

evaluated in exactly that order ((alpha*u + I) - threshold*s) so that float32 results, and therefore
spikes sitting on the threshold, match the original code. The reset is not decayed. alpha = 1 gives the
IF neuron used after pooling in SpikGRU. Gradients flow to the current and to alpha (and through the reset).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch

from zoo.kernels.backend import Backend, resolve_backend, state_dtype
from zoo.kernels.cupy_runtime import elementwise_grid, kernel_name, launch
from zoo.kernels.spike import check_spike_parameters, signed_spike_reference, spike_reference

__all__ = ["lif_scan", "lif_scan_reference"]

SpikeFn = Callable[[torch.Tensor], torch.Tensor]


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


class LIFScanCuPy(torch.autograd.Function):
    """CuPy kernels (lif_scan.cu) of `lif_scan`: one thread per neuron (b, c, spatial) loops over T.

    The state is float32 whatever the input dtype; spikes and grad_current come out in the current's
    dtype, grad_alpha in alpha's. Saved for backward: the float32 membrane u [T, N] (4 bytes per
    neuron-step, written by the forward kernel only when a gradient will be needed) and alpha as float32.
    The backward kernel reads u_t and u_{t-1} from it instead of recomputing the scan; per neuron it writes
    its share of grad_alpha (sum over t of dL/du_t u_{t-1}), which is then summed over batch and space.
    """

    @classmethod
    def apply(
        cls, current: torch.Tensor, alpha: torch.Tensor, threshold: float, signed: bool, gamma: float
    ) -> torch.Tensor:
        """Run the scan; the membrane is kept only if autograd will call backward (not under no_grad)."""
        keep_membrane = torch.is_grad_enabled() and (current.requires_grad or alpha.requires_grad)
        return super().apply(current, alpha, threshold, signed, gamma, keep_membrane)

    @staticmethod
    def forward(
        ctx,
        current: torch.Tensor,
        alpha: torch.Tensor,
        threshold: float,
        signed: bool,
        gamma: float,
        keep_membrane: bool,
    ) -> torch.Tensor:
        current = current.contiguous()
        steps, batch, channels = current.shape[:3]
        spatial = math.prod(current.shape[3:])
        neurons = batch * channels * spatial
        sizes = [steps, neurons, channels, spatial]
        leak = alpha.to(torch.float32).contiguous()
        spikes = torch.empty_like(current)
        membrane = current.new_empty((steps, neurons) if keep_membrane else (0,), dtype=torch.float32)
        flags = [int(signed), int(keep_membrane)]
        _launch_per_neuron("lif_scan_forward", current, [current, leak, spikes, membrane, *sizes, threshold, *flags])
        ctx.save_for_backward(membrane, leak)
        ctx.sizes, ctx.batch, ctx.alpha_dtype = sizes, batch, alpha.dtype
        ctx.threshold, ctx.gamma, ctx.signed = threshold, gamma, signed
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None, None, None, None]:
        membrane, leak = ctx.saved_tensors
        _, neurons, channels, spatial = ctx.sizes
        grad_spikes = grad_spikes.contiguous()
        grad_current = torch.empty_like(grad_spikes)
        grad_alpha_partial = membrane.new_empty(neurons)
        tensors = [grad_spikes, membrane, leak, grad_current, grad_alpha_partial]
        settings = [ctx.threshold, ctx.gamma, int(ctx.signed)]
        _launch_per_neuron("lif_scan_backward", grad_spikes, [*tensors, *ctx.sizes, *settings])
        grad_alpha = grad_alpha_partial.view(ctx.batch, channels, spatial).sum((0, 2)).to(ctx.alpha_dtype)
        return grad_current, grad_alpha, None, None, None, None


def _launch_per_neuron(kernel: str, sequence: torch.Tensor, args: list) -> None:
    """Run `kernel` of lif_scan.cu for the dtype of `sequence` [T, B, C, *spatial], one thread per neuron."""
    neurons = sequence[0].numel()
    if neurons:
        launch("lif_scan.cu", kernel_name(kernel, sequence.dtype), sequence.device, *elementwise_grid(neurons), args)


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
        backend: "auto", "torch" or "cupy" (see `zoo.kernels.backend`).

    Returns:
        spikes, same shape and dtype as `current`.
    """
    check_spike_parameters(threshold, gamma)
    check_lif_inputs(current, alpha)
    if resolve_backend(backend, current, alpha) == "cupy":
        return LIFScanCuPy.apply(current, alpha, float(threshold), bool(signed), float(gamma))
    return lif_scan_reference(current, alpha, threshold, signed, gamma)
