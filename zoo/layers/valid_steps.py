"""Reductions over the valid (non-padding) steps of time-first sequences.

A batch of sequences of different lengths is padded to T steps; the mask ``valid`` [T, B] (bool) is True at the
real steps ``t < lengths[b]``. Every masked reduction in the zoo (BatchNorm statistics, firing rates, readout sums)
goes through these functions, so padding is left out the same way everywhere. With ``valid=None`` every step counts.
"""

from __future__ import annotations

import torch

__all__ = ["valid_mask", "valid_mean", "valid_sum"]


def valid_mask(lengths: torch.Tensor, steps: int, batch_first: bool = False) -> torch.Tensor:
    """lengths [B] int -> valid [T = steps, B] bool (``batch_first``: [B, T]), True where t < lengths[b]."""
    mask = torch.arange(steps, device=lengths.device).unsqueeze(1) < lengths.unsqueeze(0)
    return mask.T if batch_first else mask


def _padding(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """~valid [T, B] broadcastable against x [T, B, ...]."""
    return (~valid).view(*valid.shape, *[1] * (x.dim() - 2))


def valid_mean(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """x [T, B, ...] -> [...]: mean over time and batch, over the valid steps only when a [T, B] mask is given."""
    if valid is None:
        return x.mean(dim=(0, 1))
    return x.masked_fill(_padding(x, valid), 0.0).sum(dim=(0, 1)) / valid.sum()


def valid_sum(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """x [T, B, ...] -> [B, ...]: sum over time, over the valid steps only when a [T, B] mask is given."""
    if valid is None:
        return x.sum(0)
    return x.masked_fill(_padding(x, valid), 0.0).sum(0)
