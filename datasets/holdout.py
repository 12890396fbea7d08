"""The validation protocol of datasets published without a validation split (SHD, HD, DVS-Lip): one rule for all.

Two protocols, chosen with the dataset option ``validation``:

- ``"heldout"`` (default): ``"val"`` is a seeded, label-stratified `val_fraction` of the published training part
  and ``"train"`` is the rest, so model selection never sees the test set;
- ``"test"``: the papers' protocol, ``"val"`` is the published test part and ``"train"`` the whole training part.

``"test"`` is always the published test part. A loader asks `published_part` which part to read for a split and
`split_indices` which of that part's samples belong to the split.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["SPLITS", "Validation", "check_validation", "holdout_indices", "published_part", "split_indices"]

SPLITS = ("train", "val", "test")
"""Split names every dataset accepts."""

Validation = Literal["heldout", "test"]
"""The validation protocols (see the module docstring)."""


def check_validation(validation: str, val_fraction: float) -> None:
    """Raise `ValueError` unless `validation` is a protocol and `val_fraction` lies in (0, 1)."""
    if validation not in ("heldout", "test"):
        raise ValueError(f"validation must be 'heldout' or 'test', got {validation!r}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction!r}")


def published_part(split: str, validation: Validation) -> Literal["train", "test"]:
    """The published part (``"train"`` or ``"test"``) that `split` reads under the `validation` protocol."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if validation not in ("heldout", "test"):
        raise ValueError(f"validation must be 'heldout' or 'test', got {validation!r}")
    return "test" if split == "test" or (split == "val" and validation == "test") else "train"


def split_indices(
    labels: np.ndarray, split: str, *, validation: Validation, val_fraction: float, val_seed: int
) -> np.ndarray:
    """Sorted indices into the published part (see `published_part`) of the samples that form `split`.

    Args:
        labels: ``[N]`` integer class of every sample of that published part.
        split: ``"train"``, ``"val"`` or ``"test"``.
        validation, val_fraction, val_seed: the protocol, the held-out share and the seed of its draw.

    Returns:
        int64 ``[M]``: all N indices, except under ``"heldout"`` where ``"val"`` gets `holdout_indices` and
        ``"train"`` the complement.
    """
    check_validation(validation, val_fraction)
    every = np.arange(len(labels), dtype=np.int64)
    if published_part(split, validation) == "test" or validation == "test":
        return every
    held_out = holdout_indices(labels, fraction=val_fraction, seed=val_seed)
    return held_out if split == "val" else np.setdiff1d(every, held_out)


def holdout_indices(labels: np.ndarray, *, fraction: float, seed: int) -> np.ndarray:
    """Sorted int64 indices of a validation subset holding `fraction` of the samples of every class.

    Each class contributes ``round(fraction * n_class)`` samples (at least one when ``fraction > 0`` and the class
    has two or more, never all of them), drawn with ``numpy.random.default_rng(seed)``; the same labels and seed
    give the same subset.

    Args:
        labels: ``[N]`` integer class of every sample of the training part.
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
    return np.sort(np.concatenate(chosen)).astype(np.int64) if chosen else np.zeros(0, dtype=np.int64)
