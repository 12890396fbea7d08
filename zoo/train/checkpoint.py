"""Checkpoints: atomic writes, random-number-generator states, loading and compatibility checks.

A checkpoint is a dict saved with `torch.save`:

- ``format``: ``"jellyzoo-train-1"``
- ``model``: state dict of the bare model; ``optimizer``, ``scheduler``, ``scaler``: their state dicts
- ``rng``: one entry per DDP process (index = rank), each with the ``python``, ``numpy``, ``torch`` and (on
  CUDA) ``cuda`` generator states
- ``epoch``: completed epochs; ``global_step``: optimiser steps taken
- ``config``: ``recipe`` (`Recipe.to_dict`), ``overrides`` (as given), ``model`` (name), ``model_config`` (the
  full resolved builder config), ``seed``, ``world_size``
- ``best``: ``{"metric", "value", "epoch"}`` of the best validation result so far (value None before any)
- ``metrics``: the epoch's ``{"train": {...}, "val": {...}}`` results
- ``within_epoch`` (only in a ``last.pt`` written on SIGINT/SIGTERM, see `zoo.train.interrupt`): ``{"totals": [one
  entry per process: the interrupted epoch's partial sums and its number of steps done]}``; ``epoch`` then counts
  the complete epochs before it
- ``averaged`` (only in ``averaged.pt``, written at the end of a run whose recipe sets ``average_last``):
  ``{"epochs": [the epochs whose weights were averaged]}``; ``model`` then holds their mean
  (`average_checkpoints`), ``metrics`` holds ``{val_split: {...}}``, the averaged weights' own results on the
  recipe's validation split (empty without one), and the other entries are those of the final epoch

Everything is plain data or tensors, so checkpoints load with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.errors import ConfigError
from zoo.weights import TRAINING_FORMAT

__all__ = [
    "FORMAT",
    "average_checkpoints",
    "capture_rng_state",
    "load_checkpoint",
    "restore_rng_state",
    "save_atomic",
]

FORMAT = TRAINING_FORMAT
"""The ``format`` entry of every training checkpoint (defined once, in `zoo.weights`, which reads them too)."""


def save_atomic(payload: dict[str, Any], path: str | Path) -> None:
    """Write `payload` to `path` so that `path` always holds either the previous file or the complete new one.

    The data goes to a temporary file in the same directory, is flushed to disk, and replaces `path` with
    `os.replace` (atomic on POSIX and Windows). On any error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by the engine onto the CPU; `ConfigError` if missing or not such a checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {str(path)!r} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ConfigError(f"checkpoint {str(path)!r} cannot be read ({type(error).__name__}: {error})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ConfigError(f"{str(path)!r} is not a jellyzoo training checkpoint (no format {FORMAT!r})")
    return checkpoint


def average_checkpoints(state_dicts: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise average of model state dicts with the same keys (`Recipe.average_last`).

    Floating tensors are summed in float64, divided by the count and cast back to their dtype; integer tensors
    (BatchNorm's ``num_batches_tracked``) are summed and floor-divided, as the original RAVEn's
    ``average_checkpoints``. Shapes are those of the inputs; the result is on the inputs' device.

    Raises:
        ValueError: no state dicts, or state dicts with different keys.
    """
    if not state_dicts:
        raise ValueError("average_checkpoints needs at least one state dict")
    keys = list(state_dicts[0])
    for index, state in enumerate(state_dicts[1:], start=1):
        if list(state) != keys:
            raise ValueError(f"state dict {index} has other keys than state dict 0")
    averaged = {}
    count = len(state_dicts)
    for key in keys:
        values = [state[key] for state in state_dicts]
        total = torch.stack([value.double() if value.is_floating_point() else value for value in values]).sum(0)
        if values[0].is_floating_point():
            averaged[key] = (total / count).to(values[0].dtype)
        else:
            averaged[key] = torch.div(total, count, rounding_mode="floor").to(values[0].dtype)
    return averaged


def capture_rng_state() -> dict[str, Any]:
    """States of Python's, NumPy's, torch's CPU and (if initialised) all CUDA generators of this process."""
    kind, keys, position, has_gauss, cached_gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": position,
            "has_gauss": has_gauss,
            "cached_gauss": cached_gauss,
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gauss"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
