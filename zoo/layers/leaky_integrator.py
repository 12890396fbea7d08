"""First-order leaky integration over time without a time loop.

    y_t = decay * y_{t-1} + drive_t,  y_0 = 0   =>   y_t = sum_{k <= t} decay^(t - k) drive_k

computed as one contraction with the lower-triangular matrix of decay powers, [C, T, T]. This is the cheap way
for non-spiking readouts (no threshold, no reset) at the sequence lengths of event datasets (T up to a few
hundred); the result equals the step-by-step recursion up to float rounding (a few ulp).
"""

from __future__ import annotations

import torch

__all__ = ["leaky_integrate"]


def leaky_integrate(drive: torch.Tensor, decay: torch.Tensor) -> torch.Tensor:
    """Leaky integrator over time, one decay per channel.

    Args:
        drive: input added every step, [T, B, C] (time first).
        decay: per-channel decay, [C] (any real value; |decay| > 1 grows).

    Returns:
        y, [T, B, C], with gradients to `drive` and `decay`.
    """
    if drive.dim() != 3:
        raise ValueError(f"leaky_integrate: drive must be [T, B, C], got shape {tuple(drive.shape)}")
    if decay.dim() != 1 or decay.shape[0] != drive.shape[2]:
        raise ValueError(f"leaky_integrate: decay must be [C] = [{drive.shape[2]}], got {tuple(decay.shape)}")
    steps = torch.arange(drive.shape[0], device=drive.device)
    lag = steps[:, None] - steps[None, :]
    causal = lag >= 0
    powers = decay.to(drive.dtype)[:, None, None] ** lag.clamp(min=0).to(drive.dtype)
    weights = torch.where(causal, powers, torch.zeros((), dtype=drive.dtype, device=drive.device))
    return torch.einsum("ctk,kbc->tbc", weights, drive)
