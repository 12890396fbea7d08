"""Datasets and data loaders for training and evaluation, identical in one process and under DDP.

Training order: every epoch draws one permutation of the training set from ``(seed, epoch)`` (a
`DistributedSampler`, also in a single process), and process r of W takes every W-th index starting at r, in
per-process batches of ``batch_size / W``. Step k of a W-process run therefore sees exactly the samples of step
k of a one-process run with the same global batch, and a resumed run sees the same order as an uninterrupted
one. Evaluation splits the set without padding (process r takes indices r, r + W, ...), so every sample is
counted once.

A dataset with a ``collate_fn`` attribute (e.g. padding variable-length sequences) is batched with it; others
with PyTorch's default collation. Worker processes ignore SIGINT: the training process handles it (see
`zoo.train.interrupt`) and shuts its workers down.

Errors: a dataset that cannot be constructed, or a batch that cannot be read while an epoch runs, raises
`zoo.errors.DatasetError` naming the dataset, the split and the original error (the original message only, not
the traceback of a worker process). `Batches` also measures the time the loop waits for data.
"""

from __future__ import annotations

import inspect
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from zoo.errors import ConfigError, DatasetError, one_line
from zoo.train.distributed import World
from zoo.train.recipe import Recipe
from zoo.train.registries import checked_options

__all__ = [
    "Batches",
    "ShardSampler",
    "build_dataset",
    "check_dataset_options",
    "dataset_batches",
    "dataset_factory",
    "error_summary",
    "evaluation_loader",
    "loader_settings",
    "per_process_batch",
    "start_epoch",
    "training_loader",
]


def dataset_factory(name: str) -> Any:
    """The dataset registered as `name` (`ConfigError` naming the closest names if unknown).

    `zoo.datasets` (every dataset module, with their audio and video decoders) is imported here, on the first
    lookup, so that recipes, metrics and ``--help`` work without the datasets' dependencies.
    """
    import zoo.datasets

    return zoo.datasets.get_dataset(name)


def check_dataset_options(recipe: Recipe, split: str) -> dict[str, Any]:
    """The options the recipe passes to its dataset for `split`, checked (names and types, `checked_options`) and
    converted (command-line strings parsed with the option's type hint)."""
    options = {**recipe.dataset_options, **(recipe.train_options if split == "train" else {})}
    factory = dataset_factory(recipe.dataset)
    if inspect.isclass(factory):
        return checked_options(inspect.unwrap(factory.__init__), f"dataset {recipe.dataset!r}", 3, options)
    return checked_options(factory, f"dataset {recipe.dataset!r}", 2, options)


def error_summary(error: BaseException) -> str:
    """``"<type>: <message>"`` of `error` on one line; for an error re-raised from a DataLoader worker, the
    original error's last traceback line instead of the whole worker traceback."""
    text = str(error)
    if "Original Traceback" in text:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1]
    message = one_line(text)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def build_dataset(recipe: Recipe, root: str | Path, split: str) -> Dataset:
    """The recipe's dataset for `split` under `root`; any error constructing it becomes a `DatasetError`."""
    options = check_dataset_options(recipe, split)
    what = f"dataset {recipe.dataset!r}, split {split!r} under {str(root)!r}"
    try:
        dataset = dataset_factory(recipe.dataset)(root, split, **options)
        length = len(dataset)
    except Exception as error:
        raise DatasetError(f"{what}: {error_summary(error)}") from error
    if length == 0:
        raise DatasetError(f"{what} is empty")
    return dataset


class Batches:
    """Iterate a loader, timing the waits for data; a batch that fails to load raises `DatasetError`.

    Attributes:
        wait_seconds: time spent in the loader (worker start-up included) during the last iteration.
        skip: batches drawn and dropped at the start (a run resumed within an epoch replays them, so that random
            augmentations continue exactly); their loading time is not counted. `after_skip` is called once they
            are dropped, before the next batch is drawn (the engine restores the saved random states there).
        stopping: when it returns True, a failing batch ends the iteration instead of raising (a SIGTERM sent to
            the whole job also ends the worker processes while the training process stops cleanly).
    """

    def __init__(
        self,
        loader: Iterable,
        what: str,
        skip: int = 0,
        after_skip: Callable[[], None] | None = None,
        stopping: Callable[[], bool] | None = None,
    ) -> None:
        self.loader, self.what, self.skip, self.after_skip, self.stopping = loader, what, skip, after_skip, stopping
        self.wait_seconds = 0.0

    def __len__(self) -> int:
        return len(self.loader) - self.skip

    def __iter__(self) -> Iterator[Any]:
        self.wait_seconds = 0.0
        started = time.perf_counter()
        iterator = iter(self.loader)
        index = 0
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except Exception as error:
                if self.stopping is not None and self.stopping():
                    return
                raise DatasetError(f"{self.what}: batch {index + 1} failed: {error_summary(error)}") from error
            index += 1
            if index > self.skip:
                self.wait_seconds += time.perf_counter() - started
                yield batch
            elif index == self.skip and self.after_skip is not None:
                self.after_skip()
            started = time.perf_counter()


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


def _ignore_ctrl_c(worker_id: int) -> None:
    """Worker start-up: leave Ctrl-C (SIGINT, sent to the whole terminal process group) to the training process,
    which finishes its step and stops the workers. SIGTERM gets its default back (a forked worker inherits the
    training process's handler): PyTorch's last resort for a worker that does not stop is to terminate it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def loader_settings(
    workers: int, pin_memory: bool, persistent_workers: bool = False, prefetch_factor: int | None = None
) -> dict[str, Any]:
    """`DataLoader` keyword arguments for the worker settings (persistence and prefetching only with workers)."""
    settings: dict[str, Any] = {"num_workers": workers, "pin_memory": pin_memory}
    if workers > 0:
        settings.update(persistent_workers=persistent_workers, worker_init_fn=_ignore_ctrl_c)
        if prefetch_factor is not None:
            settings["prefetch_factor"] = prefetch_factor
    return settings


def training_loader(
    dataset: Dataset, recipe: Recipe, world: World, seed: int, workers: int, pin_memory: bool
) -> tuple[DataLoader, DistributedSampler | Sampler[list[int]]]:
    """Shuffled training loader; call `start_epoch` before iterating it for an epoch.

    `workers` and `pin_memory` are the resolved settings; persistence and prefetching come from the recipe.
    A dataset that batches itself (`dataset_batches`, e.g. LRS3 by total frames) gets its batch sampler instead of
    ``batch_size`` (returned in place of the `DistributedSampler`; `start_epoch` sets its epoch the same way).
    Raises `ConfigError` when the global batch is larger than the training set (instead of running zero steps).
    """
    settings = loader_settings(workers, pin_memory, recipe.persistent_workers, recipe.prefetch_factor)
    batches = dataset_batches(dataset, world, seed, shuffle=True)
    if batches is not None:
        collate = getattr(dataset, "collate_fn", None)
        return DataLoader(dataset, batch_sampler=batches, collate_fn=collate, **settings), batches
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
        drop_last=recipe.drop_last,
        collate_fn=getattr(dataset, "collate_fn", None),
        **settings,
    )
    return loader, sampler


def dataset_batches(dataset: Dataset, world: World, seed: int, shuffle: bool) -> Sampler[list[int]] | None:
    """The dataset's own batch sampler, if it has one: ``dataset.batch_sampler(world_size, rank, seed, shuffle)``
    returning a sampler of index lists for this process (with ``set_epoch(epoch)``), or None to batch by
    ``batch_size`` (e.g. `zoo.datasets.LRS3` with ``max_frames``: batches by total frames as RAVEn)."""
    factory = getattr(dataset, "batch_sampler", None)
    return None if factory is None else factory(world.size, world.rank, seed, shuffle)


def start_epoch(
    loader: DataLoader, sampler: DistributedSampler | Sampler[list[int]], epoch: int, seed: int, world: World
) -> None:
    """Set the epoch's shuffling and the seeds of its worker processes, both from ``(seed, epoch, rank)``.

    Worker processes (and with them random augmentations) are started afresh every epoch from this seed,
    so a resumed run loads exactly what an uninterrupted one would (unless the recipe keeps persistent workers).
    """
    sampler.set_epoch(epoch)
    loader.generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_000_003 + world.rank)


def evaluation_loader(
    dataset: Dataset,
    batch_size: int,
    world: World,
    workers: int,
    pin_memory: bool,
    persistent_workers: bool = False,
    prefetch_factor: int | None = None,
) -> DataLoader:
    """Loader over this process's share of `dataset` (every sample evaluated exactly once over all processes), in
    batches of `batch_size` or the dataset's own (`dataset_batches`, unshuffled)."""
    batches = dataset_batches(dataset, world, 0, shuffle=False)
    if batches is not None:
        collate = getattr(dataset, "collate_fn", None)
        settings = loader_settings(workers, pin_memory, persistent_workers, prefetch_factor)
        return DataLoader(dataset, batch_sampler=batches, collate_fn=collate, **settings)
    return DataLoader(
        dataset,
        batch_size=max(1, batch_size // world.size),
        sampler=ShardSampler(len(dataset), world),
        generator=torch.Generator().manual_seed(0),
        collate_fn=getattr(dataset, "collate_fn", None),
        **loader_settings(workers, pin_memory, persistent_workers, prefetch_factor),
    )
