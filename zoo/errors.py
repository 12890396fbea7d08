"""Errors for a configuration that cannot be used, shared by the registries, the datasets and the engine.

`ConfigError` is a `ValueError`: a bad recipe, override, registered name, dataset, model or checkpoint, detected
before (or instead of) doing the work. ``python -m zoo.train`` and ``python -m zoo.evaluate`` print its message as
one line and exit with status 2. `DatasetError` is the `ConfigError` of data that cannot be read: a dataset that
cannot be constructed, or a sample that fails while an epoch is running.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DatasetError", "one_line"]


class ConfigError(ValueError):
    """A recipe, override, name, dataset, model or checkpoint that cannot be used; the message says what and why."""


class DatasetError(ConfigError):
    """A dataset that cannot be built or read; the message names the dataset, the split and the original error."""


def one_line(message: object) -> str:
    """`message` (an error or text) on one line: its non-empty lines stripped and joined with ``"; "``."""
    return "; ".join(line.strip() for line in str(message).splitlines() if line.strip())
