"""Dataset names: ``register_dataset(name)`` and ``get_dataset(name)``; this module imports no dataset.

A dataset factory is called as ``factory(root, split, **options) -> torch.utils.data.Dataset`` (a dataset class
or a function), with split ``"train"``, ``"val"`` or ``"test"``; its items are ``(input, target)``, the input
batch-first minus the batch axis. If the dataset has a ``collate_fn`` attribute, loaders batch with it (e.g. to
pad variable-length sequences). ``zoo.datasets`` registers the built-in datasets; training recipes refer to a
dataset only by its name, so a recipe can be listed without importing any dataset module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from zoo.names import NameTable

__all__ = ["DatasetFactory", "get_dataset", "list_datasets", "register_dataset"]

DatasetFactory = Callable[..., Any]
"""``factory(root, split, **options) -> torch.utils.data.Dataset``."""

F = TypeVar("F", bound=DatasetFactory)

_DATASETS: NameTable[DatasetFactory] = NameTable("dataset")


def register_dataset(name: str) -> Callable[[F], F]:
    """Decorator registering a dataset class or factory under `name` (`ConfigError` if the name is taken).

    >>> @register_dataset("my-corpus")
    ... class MyCorpus(torch.utils.data.Dataset): ...
    """

    def decorator(factory: F) -> F:
        if not callable(factory):
            raise TypeError(f"register_dataset({name!r}) expects a dataset class or factory, got {factory!r}")
        _DATASETS.add(name, factory, getattr(factory, "__module__", "?"))
        return factory

    return decorator


def get_dataset(name: str) -> DatasetFactory:
    """The dataset class or factory registered as `name` (`ConfigError` naming the closest names if unknown)."""
    return _DATASETS.get(name)


def list_datasets(pattern: str | None = None) -> list[str]:
    """Sorted registered dataset names, optionally filtered by an fnmatch pattern."""
    return _DATASETS.names(pattern)
