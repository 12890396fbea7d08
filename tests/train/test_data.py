"""Sample order: W processes together see exactly the batches of one process; evaluation shards cover once."""

from __future__ import annotations

import dataclasses
import signal

import torch
from torch.utils.data import TensorDataset

from zoo.train import Recipe, run
from zoo.train.config import DEFAULT_WORKERS
from zoo.train.data import ShardSampler, evaluation_loader, start_epoch, training_loader
from zoo.train.distributed import World
from zoo.train.engine import describe_run

from .conftest import tiny

RECIPE = Recipe(name="order", model=tiny.MODEL, dataset=tiny.DATASET, batch_size=8)


def _epoch_batches(world: World, epoch: int) -> list[list[int]]:
    dataset = TensorDataset(torch.arange(32), torch.zeros(32))
    loader, sampler = training_loader(dataset, RECIPE, world, seed=3, workers=0, pin_memory=False)
    start_epoch(loader, sampler, epoch, seed=3, world=world)
    return [indices.tolist() for indices, _ in loader]


def test_two_processes_split_each_global_batch_of_one_process():
    for epoch in (0, 1):
        single = _epoch_batches(World(0, 0, 1), epoch)
        rank0, rank1 = (_epoch_batches(World(rank, rank, 2), epoch) for rank in (0, 1))
        assert len(single) == len(rank0) == len(rank1) == 4
        for whole, half0, half1 in zip(single, rank0, rank1, strict=True):
            assert sorted(whole) == sorted(half0 + half1)
    assert _epoch_batches(World(0, 0, 1), 0) != _epoch_batches(World(0, 0, 1), 1)


def test_evaluation_shards_cover_every_sample_once():
    shards = [list(ShardSampler(11, World(rank, rank, 3))) for rank in range(3)]
    assert sorted(sum(shards, [])) == list(range(11))


class _PairDataset(TensorDataset):
    def collate_fn(self, items):
        inputs = torch.stack([item[0] for item in items])
        return (inputs, torch.full((len(items),), 7)), torch.stack([item[1] for item in items])


def test_dataset_collate_fn_is_used():
    dataset = _PairDataset(torch.randn(5, 2), torch.arange(5))
    (inputs, extra), target = next(iter(evaluation_loader(dataset, 4, World(0, 0, 1), 0, False)))
    assert inputs.shape == (4, 2) and extra.tolist() == [7] * 4 and target.tolist() == [0, 1, 2, 3]


def test_recipe_loader_fields_reach_the_data_loader():
    dataset = TensorDataset(torch.arange(32), torch.zeros(32))
    recipe = dataclasses.replace(RECIPE, persistent_workers=True, prefetch_factor=3)
    loader, _ = training_loader(dataset, recipe, World(0, 0, 1), seed=0, workers=1, pin_memory=True)
    assert loader.persistent_workers and loader.prefetch_factor == 3 and loader.pin_memory
    assert loader.worker_init_fn is not None and loader.num_workers == 1
    loader, _ = training_loader(dataset, recipe, World(0, 0, 1), seed=0, workers=0, pin_memory=False)
    assert not loader.persistent_workers and loader.num_workers == 0


def test_workers_come_from_the_command_line_else_the_recipe_else_the_default(make_config):
    assert describe_run(make_config(workers=None))["run"]["workers"] == DEFAULT_WORKERS
    assert describe_run(make_config(workers=None, overrides=["workers=3"]))["run"]["workers"] == 3
    assert describe_run(make_config(workers=1, overrides=["workers=3"]))["run"]["workers"] == 1


def test_the_waiting_for_a_slow_loader_is_measured(make_config):
    """Every item takes 5 ms to load (0.32 s per training epoch) while a step of the tiny model takes about 1 ms."""
    slow = run(make_config(overrides=["epochs=1", "data.delay_s=0.005"]))
    assert slow.history[0]["data_wait"]["train"] > 0.5 and slow.history[0]["data_wait"]["val"] > 0.5


class _SignalDispositions(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.tensor(
            [signal.getsignal(signal.SIGINT) is signal.SIG_IGN, signal.getsignal(signal.SIGTERM) is signal.SIG_DFL]
        )


def test_workers_ignore_ctrl_c_and_keep_the_default_sigterm():
    previous = signal.signal(signal.SIGTERM, lambda number, frame: None)
    try:
        batch = next(iter(evaluation_loader(_SignalDispositions(), 2, World(0, 0, 1), 1, False)))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert batch.all()
