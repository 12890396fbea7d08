"""Losses shared by every family (family losses live in ``zoo/train/recipes/<family>.py``)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.train.registries import logits_of, register_loss

__all__ = ["cross_entropy"]


@register_loss("cross_entropy")
def cross_entropy(output: Any, target: torch.Tensor, model: nn.Module, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy of logits ``[B, C]`` (or the first item of a tuple output) against class indices ``[B]``."""
    return F.cross_entropy(logits_of(output).float(), target, label_smoothing=label_smoothing)
