"""Spike activations with the SpikGRU surrogate gradients (design note spikgru.md, section 1.2).

Binary:  s = 1[v >= th],                      ds/dv ~ 1 / (1 + gamma (v - th)^2)
Signed:  s = 1[v >= th] - 1[v <= -th],        ds/dv ~ [1/(1 + gamma (v - th)^2) + 1/(1 + gamma (v + th)^2)] / c
         with c = 1 + 1/(1 + 4 gamma th^2), which makes the surrogate peak exactly 1 at v = +-th.

Both thresholds are inclusive and compared in float32 for float16/bfloat16 membranes (in the kernels and the
reference alike: a threshold such as 0.1 is not representable in float16). The surrogate of the binary spike
is the derivative of atan(sqrt(gamma) (v - th)) / sqrt(gamma); the references use that primitive as a
straight-through term, so they read like the equations and are differentiable with plain autograd. Without
autograd (inference, or a membrane that needs no gradient) they return the step alone.

Kernels (``spike.cu``), one thread per element: ``spike_forward`` writes s, ``spike_backward`` writes
grad_v = grad_s * surrogate(v). Saved for backward: v.
"""

from __future__ import annotations

import math

import torch

from zoo.kernels.backend import Backend, resolve_backend, state_dtype
from zoo.kernels.launch import empty, launch

__all__ = [
    "signed_spike",
    "signed_spike_reference",
    "signed_spike_surrogate",
    "spike",
    "spike_reference",
    "spike_surrogate",
]

SOURCE = "spike.cu"


# ---------------------------------------------------------------------------------------------- checks


def check_spike_parameters(threshold: float, gamma: float) -> None:
    """Raise ValueError unless threshold and gamma are finite and positive."""
    if not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be a finite positive number, got {threshold!r}")
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma (surrogate sharpness) must be a finite positive number, got {gamma!r}")


# ------------------------------------------------------------------------------------------------- reference


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


def _fired(v: torch.Tensor, threshold: float, signed: bool) -> torch.Tensor:
    """The step in v's dtype, compared at the state precision (float32 for half membranes, as the kernels)."""
    compared = v.detach().to(state_dtype(v.dtype))
    fired = (compared >= threshold).to(v.dtype)
    return fired - (compared <= -threshold).to(v.dtype) if signed else fired


def spike_reference(v: torch.Tensor, threshold: float = 1.0, gamma: float = 10.0) -> torch.Tensor:
    """Binary spikes {0, 1} of `v` (any shape), same dtype; pure PyTorch (the oracle and CPU fallback)."""
    fired = _fired(v, threshold, signed=False)
    if not (v.requires_grad and torch.is_grad_enabled()):
        return fired
    return fired + _straight_through(_surrogate_primitive(v, threshold, gamma))


def signed_spike_reference(v: torch.Tensor, threshold: float = 1.0, gamma: float = 10.0) -> torch.Tensor:
    """Signed spikes {-1, 0, +1} of `v` (any shape), same dtype; pure PyTorch (the oracle and CPU fallback)."""
    fired = _fired(v, threshold, signed=True)
    if not (v.requires_grad and torch.is_grad_enabled()):
        return fired
    normaliser = 1.0 + 1.0 / (1.0 + 4.0 * gamma * threshold**2)
    primitive = (_surrogate_primitive(v, threshold, gamma) + _surrogate_primitive(v, -threshold, gamma)) / normaliser
    return fired + _straight_through(primitive)


# ------------------------------------------------------------------------------------------ kernel launches


def _launch_forward(v: torch.Tensor, threshold: float, signed: bool) -> torch.Tensor:
    """spikes = spike(v) with spike.cu; v contiguous."""
    spikes = empty(v.shape, v.dtype, v.device)
    launch(
        SOURCE,
        "spike_forward",
        threads=v.numel(),
        dtype=v.dtype,
        v=v,
        spikes=spikes,
        count=v.numel(),
        threshold=threshold,
        signed_spikes=int(signed),
    )
    return spikes


def _launch_backward(grad_spikes: torch.Tensor, v: torch.Tensor, threshold: float, gamma: float, signed: bool):
    """grad_v = grad_spikes * surrogate(v) with spike.cu; both contiguous, same dtype."""
    grad_v = empty(v.shape, v.dtype, v.device)
    launch(
        SOURCE,
        "spike_backward",
        threads=v.numel(),
        dtype=v.dtype,
        grad_spikes=grad_spikes,
        v=v,
        grad_v=grad_v,
        count=v.numel(),
        threshold=threshold,
        gamma=gamma,
        signed_spikes=int(signed),
    )
    return grad_v


# ------------------------------------------------------------------------------------- PyTorch operators


@torch.library.custom_op("jellyzoo::spike_forward", mutates_args=())
def spike_op(v: torch.Tensor, threshold: float, gamma: float, signed: bool) -> torch.Tensor:
    """Spikes of `v` (any shape; float32/float16/bfloat16; CUDA or CPU) by the kernels. gamma is for backward."""
    return _launch_forward(v.contiguous(), threshold, signed)


@spike_op.register_fake
def _(v: torch.Tensor, threshold: float, gamma: float, signed: bool) -> torch.Tensor:
    return torch.empty_like(v, memory_format=torch.contiguous_format)


@torch.library.custom_op("jellyzoo::spike_backward", mutates_args=())
def spike_backward_op(
    grad_spikes: torch.Tensor, v: torch.Tensor, threshold: float, gamma: float, signed: bool
) -> torch.Tensor:
    """dL/dv = dL/ds * surrogate(v), in v's shape and dtype."""
    return _launch_backward(grad_spikes.to(v.dtype).contiguous(), v.contiguous(), threshold, gamma, signed)


@spike_backward_op.register_fake
def _(grad_spikes: torch.Tensor, v: torch.Tensor, threshold: float, gamma: float, signed: bool) -> torch.Tensor:
    return torch.empty_like(v, memory_format=torch.contiguous_format)


def _setup_spike(ctx, inputs, output) -> None:
    v, threshold, gamma, signed = inputs
    ctx.save_for_backward(v)
    ctx.settings = (threshold, gamma, signed)


def _spike_backward(ctx, grad_spikes):
    (v,) = ctx.saved_tensors
    return spike_backward_op(grad_spikes, v, *ctx.settings), None, None, None


spike_op.register_autograd(_spike_backward, setup_context=_setup_spike)


# ---------------------------------------------------------------------------------------------- dispatch


def spike(v: torch.Tensor, threshold: float = 1.0, gamma: float = 10.0, *, backend: Backend = "auto") -> torch.Tensor:
    """Binary spikes s = 1[v >= threshold] with the SpikGRU surrogate gradient.

    Args:
        v: membrane potential, any shape, float32/float16/bfloat16 (float64 on the torch backend).
        threshold: firing threshold (> 0).
        gamma: surrogate sharpness (> 0).
        backend: "auto", "torch", "cupy" or "cpu" (see `zoo.kernels.backend`).

    Returns:
        spikes with the shape and dtype of `v`.
    """
    check_spike_parameters(threshold, gamma)
    if resolve_backend(backend, v) == "torch":
        return spike_reference(v, threshold, gamma)
    return spike_op(v, float(threshold), float(gamma), False)


def signed_spike(
    v: torch.Tensor, threshold: float = 1.0, gamma: float = 10.0, *, backend: Backend = "auto"
) -> torch.Tensor:
    """Signed spikes s = 1[v >= th] - 1[v <= -th] in {-1, 0, +1} with the normalised two-bump surrogate.

    Args and returns as `spike`.
    """
    check_spike_parameters(threshold, gamma)
    if resolve_backend(backend, v) == "torch":
        return signed_spike_reference(v, threshold, gamma)
    return spike_op(v, float(threshold), float(gamma), True)
