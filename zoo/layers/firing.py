"""Firing-rate recording without host synchronisation.

A `FiringRate` module sits after a spiking layer and keeps mean |s| of its last forward as a 0-d tensor
on the spikes' device (it still carries autograd history, so spike regularisers can use it). Nothing is
copied to the host: `firing_rates(model)` collects the tensors, and the caller reads them once (e.g. with
one `torch.stack(...).tolist()` per logging interval). Signed spikes count as events (-1 counts as 1).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FiringRate", "firing_rates"]


class FiringRate(nn.Module):
    """Identity on spikes `[T, B, ...]` (any shape) that records their mean absolute value."""

    def __init__(self) -> None:
        super().__init__()
        self.rate: torch.Tensor | None = None

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        self.rate = spikes.abs().mean()
        return spikes


def firing_rates(model: nn.Module, detach: bool = True) -> dict[str, torch.Tensor]:
    """Mean |s| of every `FiringRate` in `model` from its last forward, keyed by module name (0-d device tensors).

    Modules that have not run yet are left out.
    """
    rates = {}
    for name, module in model.named_modules():
        if isinstance(module, FiringRate) and module.rate is not None:
            rates[name] = module.rate.detach() if detach else module.rate
    return rates
