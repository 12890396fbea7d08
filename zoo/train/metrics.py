"""Metrics shared by the families: classification accuracy (top-1 and top-k) and StereoSpike's depth metrics.

Every metric returns ``(sum, count)`` for one batch as device tensors (no host sync); the engine reports
sum / count over the epoch (see `zoo.train.registries`). This module imports no dataset and no model, so a metric
lookup works without any family's dependencies (audio or video decoders).

=============  ====================================================================  =================
name           value                                                                 best
=============  ====================================================================  =================
``accuracy``   top-1 accuracy, fraction in [0, 1] of samples whose arg-max is right  higher
``top5``       top-5 accuracy, fraction of samples whose target is among the 5 best  higher
``mde``        mean depth error in cm (per-frame mean over valid pixels, then mean)  lower
``1pa``        one-pixel accuracy in % (disparity within 1 px), per frame, then mean  higher
=============  ====================================================================  =================

Other ``top<k>`` accuracies are one line each: ``register_metric("top3")(top_k_accuracy(3))``.
"""

from __future__ import annotations

from typing import Any

import torch

from zoo.train.registries import MetricFn, logits_of, register_metric

__all__ = [
    "DISPARITY_CONSTANT",
    "accuracy",
    "mean_depth_error",
    "one_pixel_accuracy",
    "top5_accuracy",
    "top_k_accuracy",
]

DISPARITY_CONSTANT = 7.0 * 19.941772
"""Focal length (px) x baseline (m) of MVSEC's DAVIS pair, as Tulyakov et al.: disparity = this / depth."""


def _count(target: torch.Tensor) -> torch.Tensor:
    return torch.full((), target.shape[0], device=target.device)


@register_metric("accuracy", higher_is_better=True)
def accuracy(output: Any, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-1 accuracy (fraction in [0, 1]) of logits ``[B, C]`` against class indices ``[B]``: (correct, count)."""
    correct = (logits_of(output).argmax(dim=-1) == target).sum()
    return correct, _count(target)


def top_k_accuracy(k: int) -> MetricFn:
    """The metric "target among the `k` highest logits" of logits ``[B, C]`` against ``[B]``: (hits, count).

    Ties at the k-th logit count as hits only for the indices `torch.topk` returns. With fewer than `k` classes
    every sample is a hit.
    """
    if k < 1:
        raise ValueError(f"top_k_accuracy needs k >= 1, got {k}")

    def top_k(output: Any, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = logits_of(output)
        best = logits.topk(min(k, logits.shape[-1]), dim=-1).indices
        return (best == target.unsqueeze(-1)).any(dim=-1).sum(), _count(target)

    top_k.__doc__ = f"Top-{k} accuracy (fraction in [0, 1]) of logits ``[B, C]`` against class indices ``[B]``."
    top_k.__name__ = top_k.__qualname__ = f"top{k}_accuracy"
    return top_k


top5_accuracy = register_metric("top5", higher_is_better=True)(top_k_accuracy(5))


def _per_frame_mean(values: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum over frames of the per-frame mean over valid pixels, number of frames with a valid pixel)."""
    counts = valid.flatten(1).sum(1)
    sums = torch.where(valid, values, torch.zeros_like(values)).flatten(1).sum(1)
    has_pixels = counts > 0
    return (sums[has_pixels] / counts[has_pixels]).sum(), has_pixels.sum()


@register_metric("mde", higher_is_better=False)
def mean_depth_error(output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean Depth Error in cm of the final prediction: per-frame mean |D - D_gt| over valid pixels, mean over frames.

    Args:
        output: ``[B, K, H, W]`` depths in metres; the last channel is the final prediction.
        target: ``[B, 1, H, W]`` metres, NaN where the ground truth is invalid.
    """
    valid = ~torch.isnan(target)
    error = (output[:, -1:].float() - torch.nan_to_num(target)).abs() * 100.0
    return _per_frame_mean(error, valid)


@register_metric("1pa", higher_is_better=True)
def one_pixel_accuracy(output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """1PA in %: valid pixels whose disparity (`DISPARITY_CONSTANT` / depth) is off by at most 1 px; mean over frames.

    Args: as `mean_depth_error`.
    """
    valid = ~torch.isnan(target)
    predicted = DISPARITY_CONSTANT / output[:, -1:].float()
    truth = DISPARITY_CONSTANT / torch.nan_to_num(target, nan=1.0)
    within = ((predicted - truth).abs() <= 1.0).float() * 100.0
    return _per_frame_mean(within, valid)
