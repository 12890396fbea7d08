"""Atomic checkpoint writes and random-number-generator state round trips."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from zoo.train import run
from zoo.train.checkpoint import FORMAT, capture_rng_state, load_checkpoint, restore_rng_state, save_atomic


def _crashing_save(payload, file, *args, **kwargs):
    file.write(b"half a checkpoint")
    raise OSError("simulated crash while writing")


def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_atomic({"format": FORMAT, "epoch": 1, "weights": torch.arange(4.0)}, path)
    monkeypatch.setattr(torch, "save", _crashing_save)
    with pytest.raises(OSError, match="simulated crash"):
        save_atomic({"format": FORMAT, "epoch": 2, "weights": torch.zeros(4)}, path)
    monkeypatch.undo()

    assert [entry.name for entry in tmp_path.iterdir()] == ["last.pt"]
    kept = load_checkpoint(path)
    assert kept["epoch"] == 1 and torch.equal(kept["weights"], torch.arange(4.0))


def test_crash_while_checkpointing_a_run_leaves_last_intact(make_config, monkeypatch):
    first = run(make_config(epochs=2, stop_after_epochs=1))
    before = load_checkpoint(first.last_checkpoint)
    monkeypatch.setattr(torch, "save", _crashing_save)
    with pytest.raises(OSError, match="simulated crash"):
        run(make_config(epochs=2, resume="auto"))
    monkeypatch.undo()

    after = load_checkpoint(first.last_checkpoint)
    assert after["epoch"] == 1
    for name, value in before["model"].items():
        assert torch.equal(after["model"][name], value)
    assert not [entry.name for entry in first.out.iterdir() if entry.name.endswith(".tmp")]


def test_rng_state_round_trip():
    state = capture_rng_state()
    expected = (random.random(), np.random.rand(3), torch.rand(3))
    restore_rng_state(state)
    assert random.random() == expected[0]
    assert np.array_equal(np.random.rand(3), expected[1])
    assert torch.equal(torch.rand(3), expected[2])


def test_unreadable_and_foreign_files_are_rejected(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"):
        load_checkpoint(corrupt)
    foreign = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="not a jellyzoo training checkpoint"):
        load_checkpoint(foreign)
