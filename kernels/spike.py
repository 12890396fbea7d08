"""Spike activations with the SpikGRU surrogate gradients (design note spikgru.md, section 1.2).

Binary:  s = 1[v >= th],                      ds/dv ~ 1 / (1 + gamma (v - th)^2)
Signed:  s = 1[v >= th] - 1[v <= -th],        ds/dv ~ [1/(1 + gamma (v - th)^2) + 1/(1 + gamma (v + th)^2)] / c
         with c = 1 + 1/(1 + 4 gamma th^2), which makes the surrogate peak exactly 1 at v = +-th.

Both thresholds are inclusive. The surrogate of the binary spike is the derivative of
atan(sqrt(gamma) (v - th)) / sqrt(gamma); the references use that primitive as a straight-through term, so
they read like the equations and are differentiable with plain autograd. Without autograd (inference, or a
membrane that needs no gradient) they return the step alone.
"""

from __future__ import annotations

import math

import torch

from zoo.kernels.backend import Backend, resolve_backend
from zoo.kernels.cupy_runtime import elementwise_grid, kernel_name, launch

__all__ = [
    "signed_spike",
    "signed_spike_reference",
    "signed_spike_surrogate",
    "spike",
    "spike_reference",
    "spike_surrogate",
]


def check_spike_parameters(threshold: float, gamma: float) -> None:
    """Raise ValueError unless threshold and gamma are finite and positive."""
    if not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be a finite positive number, got {threshold!r}")
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma (surrogate sharpness) must be a finite positive number, got {gamma!r}")


def spike_surrogate(v: torch.Tensor, threshold: float = 1.0, gamma: float = 10.0) -> torch.Tensor:
    """Surrogate derivative ds/dv of the binary spike: 1 / (1 + gamma (v - th)^2)."""
    return 1.0 / (1.0 + gamma * (v - threshold) ** 2)


def signed_spike_surrogate(v: torch.Tensor, threshold: float = 1.0, gamma: float = 10.0) -> torch.Tensor:
    """Surrogate derivative of the signed spike: the two bumps at +-th, normalised to peak 1."""
    normaliser = 1.0 + 1.0 / (1.0 + 4.0 * gamma * threshold**2)
    return (spike_surrogate(v, threshold, gamma) + spike_surrogate(v, -threshold, gamma)) / normaliser


def _surrogate_primitive(v: torch.Tensor, threshold: float, gamma: float) -> torch.Tensor:
    """atan(sqrt(gamma) (v - th)) / sqrt(gamma), whose derivative is `spike_surrogate`."""
    root = math.sqrt(gamma)
    return torch.atan(root * (v - threshold)) / root


def _straight_through(primitive: torch.Tensor) -> torch.Tensor:
    """Zero in the forward pass (exactly), d primitive / dv in the backward pass."""
    return primitive - primitive.detach()


def spike_reference(v: torch.Tensor, threshold: float = 1.0, gamma: float = 10.0) -> torch.Tensor:
    """Binary spikes {0, 1} of `v` (any shape), same dtype; pure PyTorch (the oracle and CPU path)."""
    fired = (v >= threshold).to(v.dtype)
    if not (v.requires_grad and torch.is_grad_enabled()):
        return fired
    return fired + _straight_through(_surrogate_primitive(v, threshold, gamma))


def signed_spike_reference(v: torch.Tensor, threshold: float = 1.0, gamma: float = 10.0) -> torch.Tensor:
    """Signed spikes {-1, 0, +1} of `v` (any shape), same dtype; pure PyTorch (the oracle and CPU path)."""
    fired = (v >= threshold).to(v.dtype) - (v <= -threshold).to(v.dtype)
    if not (v.requires_grad and torch.is_grad_enabled()):
        return fired
    normaliser = 1.0 + 1.0 / (1.0 + 4.0 * gamma * threshold**2)
    primitive = (_surrogate_primitive(v, threshold, gamma) + _surrogate_primitive(v, -threshold, gamma)) / normaliser
    return fired + _straight_through(primitive)


class SpikeCuPy(torch.autograd.Function):
    """CuPy kernels (spike.cu) of `spike` (signed=False) and `signed_spike` (signed=True).

    Forward: spikes = spike(v), one thread per element, comparisons in float32, output in v's dtype.
    Backward: grad_v = grad_spikes * surrogate(v) (`spike_surrogate` / `signed_spike_surrogate`, in float32).
    Saved for backward: v itself (made contiguous), nothing else.
    """

    @staticmethod
    def forward(ctx, v: torch.Tensor, threshold: float, gamma: float, signed: bool) -> torch.Tensor:
        v = v.contiguous()
        spikes = torch.empty_like(v)
        _launch_elementwise("spike_forward", v, [v, spikes, v.numel(), threshold, int(signed)])
        ctx.save_for_backward(v)
        ctx.settings = (threshold, gamma, signed)
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        (v,) = ctx.saved_tensors
        threshold, gamma, signed = ctx.settings
        grad_spikes = grad_spikes.contiguous()
        grad_v = torch.empty_like(v)
        _launch_elementwise("spike_backward", v, [grad_spikes, v, grad_v, v.numel(), threshold, gamma, int(signed)])
        return grad_v, None, None, None


def _launch_elementwise(kernel: str, v: torch.Tensor, args: list) -> None:
    """Run `kernel` of spike.cu for v's dtype with one thread per element of `v` (nothing to do when empty)."""
    count = v.numel()
    if count:
        launch("spike.cu", kernel_name(kernel, v.dtype), v.device, *elementwise_grid(count), args)


def spike(v: torch.Tensor, threshold: float = 1.0, gamma: float = 10.0, *, backend: Backend = "auto") -> torch.Tensor:
    """Binary spikes s = 1[v >= threshold] with the SpikGRU surrogate gradient.

    Args:
        v: membrane potential, any shape, float32/float16/bfloat16 (float64 on the torch backend).
        threshold: firing threshold (> 0).
        gamma: surrogate sharpness (> 0).
        backend: "auto" (CuPy for CUDA tensors when usable), "torch" or "cupy".

    Returns:
        spikes with the shape and dtype of `v`.
    """
    check_spike_parameters(threshold, gamma)
    if resolve_backend(backend, v) == "cupy":
        return SpikeCuPy.apply(v, float(threshold), float(gamma), False)
    return spike_reference(v, threshold, gamma)


def signed_spike(
    v: torch.Tensor, threshold: float = 1.0, gamma: float = 10.0, *, backend: Backend = "auto"
) -> torch.Tensor:
    """Signed spikes s = 1[v >= th] - 1[v <= -th] in {-1, 0, +1} with the normalised two-bump surrogate.

    Args and returns as `spike`.
    """
    check_spike_parameters(threshold, gamma)
    if resolve_backend(backend, v) == "cupy":
        return SpikeCuPy.apply(v, float(threshold), float(gamma), True)
    return signed_spike_reference(v, threshold, gamma)
