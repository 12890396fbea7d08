"""Warnings a dataset gives once, however many DataLoader workers read it and however many epochs run.

A flag set in one worker process must be seen by the others and by the workers of later epochs, which are new
processes. `SharedFlags` keeps the flags in shared memory created with the dataset, so every worker (forked or
spawned) writes to the same bytes; a copy made outside process start-up (``pickle``, ``copy.deepcopy``) gets its own
flags.
"""

from __future__ import annotations

import multiprocessing
import warnings
from collections.abc import Callable, Sequence
from multiprocessing.context import get_spawning_popen
from typing import Any, TypeVar

__all__ = ["MAX_LISTED", "SharedFlags", "UnreadableSamples", "warn_skipped"]

MAX_LISTED = 50
"""Problems listed by name in one warning; the rest are counted."""

Item = TypeVar("Item")


class SharedFlags:
    """`count` booleans shared between a dataset and its worker processes, all False at first."""

    def __init__(self, count: int) -> None:
        self._flags = multiprocessing.Array("b", max(count, 1))

    def first(self, index: int = 0) -> bool:
        """Set flag `index`; True only for the first caller over all processes."""
        with self._flags.get_lock():
            if self._flags[index]:
                return False
            self._flags[index] = 1
            return True

    def __getstate__(self) -> dict[str, Any]:
        if get_spawning_popen() is not None:  # a worker being started: share the memory
            return {"flags": self._flags}
        return {"values": bytes(self._flags.get_obj())}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "flags" in state:
            self._flags = state["flags"]
        else:
            self._flags = multiprocessing.Array("b", state["values"])


def warn_skipped(dataset: str, problems: Sequence[str]) -> None:
    """One warning listing the samples a dataset left out at construction (``skip_unreadable=True``)."""
    if not problems:
        return
    listed = "\n  ".join(problems[:MAX_LISTED])
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    warnings.warn(
        f"{dataset}: skipped {len(problems)} unreadable sample(s) (skip_unreadable=True):\n  {listed}{more}",
        stacklevel=3,
    )


class UnreadableSamples:
    """Reads items by index; with `skip` an unreadable one is replaced by the next readable one (in index order,
    wrapping around) and named in a warning given once per sample over all workers and epochs. Without `skip` the
    reader's error propagates. Unreadable means the reader raised `OSError` or `ValueError`.
    """

    def __init__(self, dataset: str, count: int, *, skip: bool) -> None:
        self.dataset = dataset
        self.count = count
        self.skip = skip
        self._reported = SharedFlags(count) if skip else None

    def read(self, index: int, reader: Callable[[int], Item]) -> Item:
        """``reader(index)``, or with skipping ``reader(j)`` for the first readable j = index, index + 1, ..."""
        if not self.skip:
            return reader(index)
        for offset in range(self.count):
            candidate = (index + offset) % self.count
            try:
                return reader(candidate)
            except (OSError, ValueError) as error:
                if self._reported.first(candidate):
                    warnings.warn(
                        f"{self.dataset}: skipped an unreadable sample (skip_unreadable=True; item {candidate} is "
                        f"replaced by the next readable one): {error}",
                        stacklevel=3,
                    )
        raise ValueError(f"{self.dataset}: none of its {self.count} samples is readable")
