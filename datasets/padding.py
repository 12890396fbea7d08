"""Batching of variable-length feature sequences: zero padding plus the true lengths, so padding can be masked."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["pad_features"]


def pad_features(
    items: Sequence[tuple[torch.Tensor, torch.Tensor]], *, with_lengths: bool = False
) -> tuple[torch.Tensor | tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Collate ``(features [T_i, F], label)`` items into ``(features [B, T_max, F], labels [B])``.

    Frames past each item's length are zeros, as in sparch's ``pad_sequence`` batching. With ``with_lengths`` the
    input is ``(features, lengths [B] int64 frames)`` instead, so that a model can leave the padding out of its
    statistics and outputs (`zoo.layers.valid_steps.valid_mask(lengths, T_max, batch_first=True)` is the
    [B, T_max] mask of the real frames); sparch computes the lengths but never uses them.
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    features = [item[0] for item in items]
    widths = {tuple(feature.shape[1:]) for feature in features}
    if len(widths) != 1 or any(feature.ndim != 2 for feature in features):
        raise ValueError(f"expected items of shape [T, F] with one F, got shapes {[tuple(f.shape) for f in features]}")
    lengths = torch.tensor([feature.shape[0] for feature in features], dtype=torch.int64)
    padded = torch.nn.utils.rnn.pad_sequence(features, batch_first=True)
    labels = torch.stack([torch.as_tensor(item[1], dtype=torch.int64) for item in items])
    return ((padded, lengths) if with_lengths else padded), labels
