"""Datasets and data loaders for training and evaluation, identical in one process and under DDP.

Training order: every epoch draws one permutation of the training set from ``(seed, epoch)`` (a
`DistributedSampler`, also in a single process), and process r of W takes every W-th index starting at r, in
per-process batches of ``batch_size / W``. Step k of a W-process run therefore sees exactly the samples of step
k of a one-process run with the same global batch, and a resumed run sees the same order as an uninterrupted
one. Evaluation splits the set without padding (process r takes indices r, r + W, ...), so every sample is
counted once.

A dataset with a ``collate_fn`` attribute (e.g. padding variable-length sequences) is batched with it; others
with PyTorch's default collation.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from zoo.train.distributed import World
from zoo.train.errors import ConfigError
from zoo.train.recipe import Recipe
from zoo.train.registries import check_options, get_dataset

__all__ = [
    "ShardSampler",
    "build_dataset",
    "check_dataset_options",
    "evaluation_loader",
    "per_process_batch",
    "start_epoch",
    "training_loader",
]


def check_dataset_options(recipe: Recipe, split: str) -> dict[str, Any]:
    """The options the recipe passes to its dataset for `split`, checked against the factory's signature."""
    options = {**recipe.dataset_options, **(recipe.train_options if split == "train" else {})}
    check_options(get_dataset(recipe.dataset), f"dataset {recipe.dataset!r}", ("root", split), options)
    return options


def build_dataset(recipe: Recipe, root: str | Path, split: str) -> Dataset:
    """The recipe's dataset for `split` under `root`; a factory error becomes a `ConfigError` naming the split."""
    options = check_dataset_options(recipe, split)
    try:
        dataset = get_dataset(recipe.dataset)(root, split, **options)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"dataset {recipe.dataset!r}, split {split!r} under {str(root)!r}: {error}") from error
    if len(dataset) == 0:
        raise ConfigError(f"dataset {recipe.dataset!r}, split {split!r} under {str(root)!r} is empty")
    return dataset


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + size, ...`` of a dataset of `length` items, in order and without padding."""

    def __init__(self, length: int, world: World) -> None:
        self.indices = range(world.rank, length, world.size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def per_process_batch(batch_size: int, world: World) -> int:
    """`batch_size` (global) divided evenly over the processes; `ConfigError` if it does not divide."""
    if batch_size % world.size:
        raise ConfigError(f"batch_size {batch_size} does not divide evenly over {world.size} processes")
    return batch_size // world.size


def training_loader(
    dataset: Dataset, recipe: Recipe, world: World, seed: int, workers: int, pin_memory: bool
) -> tuple[DataLoader, DistributedSampler]:
    """Shuffled training loader; call `start_epoch` before iterating it for an epoch.

    Raises `ConfigError` when the global batch is larger than the training set (instead of running zero steps).
    """
    if recipe.batch_size > len(dataset):
        raise ConfigError(
            f"batch_size {recipe.batch_size} is larger than the training set ({len(dataset)} samples of "
            f"dataset {recipe.dataset!r})"
        )
    batch = per_process_batch(recipe.batch_size, world)
    sampler = DistributedSampler(
        dataset, num_replicas=world.size, rank=world.rank, shuffle=True, seed=seed, drop_last=False
    )
    loader = DataLoader(
        dataset,
        batch_size=batch,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=recipe.drop_last,
        collate_fn=getattr(dataset, "collate_fn", None),
    )
    return loader, sampler


def start_epoch(loader: DataLoader, sampler: DistributedSampler, epoch: int, seed: int, world: World) -> None:
    """Set the epoch's shuffling and the seeds of its worker processes, both from ``(seed, epoch, rank)``.

    Worker processes (and with them random augmentations) are started afresh every epoch from this seed,
    so a resumed run loads exactly what an uninterrupted one would.
    """
    sampler.set_epoch(epoch)
    loader.generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_000_003 + world.rank)


def evaluation_loader(dataset: Dataset, batch_size: int, world: World, workers: int, pin_memory: bool) -> DataLoader:
    """Loader over this process's share of `dataset` (every sample evaluated exactly once over all processes)."""
    return DataLoader(
        dataset,
        batch_size=max(1, batch_size // world.size),
        sampler=ShardSampler(len(dataset), world),
        num_workers=workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(0),
        collate_fn=getattr(dataset, "collate_fn", None),
    )
