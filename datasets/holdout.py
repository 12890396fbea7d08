"""Seeded, label-stratified validation hold-out for datasets published without a validation split (SHD, HD)."""

from __future__ import annotations

import numpy as np

__all__ = ["holdout_indices"]


def holdout_indices(labels: np.ndarray, *, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a validation subset holding `fraction` of the samples of every class.

    Each class contributes ``round(fraction * n_class)`` samples (at least one when ``fraction > 0`` and the class
    has two or more), drawn with ``numpy.random.default_rng(seed)``; the same labels and seed give the same subset.

    Args:
        labels: ``[N]`` integer class of every sample of the training file.
        fraction: share held out, in ``(0, 1)``.
        seed: random seed of the draw.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the validation fraction must lie in (0, 1), got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = int(round(fraction * members.size))
        if members.size >= 2:
            count = min(max(count, 1), members.size - 1)
        chosen.append(rng.choice(members, size=count, replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
