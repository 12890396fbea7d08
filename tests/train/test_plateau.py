"""The ``plateau`` schedule: ReduceLROnPlateau as a multiplier of the per-iteration factor, in checkpoints and runs."""

from __future__ import annotations

import io

import pytest
import torch

from zoo.train import ConfigError, Recipe, run
from zoo.train.checkpoint import load_checkpoint
from zoo.train.config import apply_overrides, check_recipe
from zoo.train.engine import check_resumable
from zoo.train.optim import build_optimizer, build_scheduler

from .conftest import tiny

BASE = Recipe(name="plateau", model=tiny.MODEL, dataset=tiny.DATASET, lr=0.1, epochs=10, schedule="plateau")


def _scheduler(steps_per_epoch: int = 3, **fields):
    recipe = apply_overrides(BASE, fields)
    optimizer = build_optimizer(torch.nn.Linear(2, 2), recipe)
    return optimizer, build_scheduler(optimizer, steps_per_epoch, recipe)


def _train_epoch(optimizer, scheduler, steps: int) -> list[float]:
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize(
    ("metric", "mode", "values"),
    [
        ("accuracy", "max", [0.5, 0.6, 0.6, 0.55, 0.60005, 0.7, 0.1, 0.2, 0.3, 0.3, float("nan"), 0.3, 0.3, 0.3]),
        ("loss", "min", [2.0, 1.5, 1.6, 1.49995, 1.7, 1.0, 1.2, 1.1, 0.9, 0.9, 0.9, 0.9, float("nan"), 0.9]),
    ],
)
def test_matches_reduce_lr_on_plateau_and_stops_at_min_lr(metric: str, mode: str, values: list[float]) -> None:
    """Same lr as PyTorch's scheduler after every epoch, in both directions, down to the min_lr floor."""
    fields = dict(selection_metric=metric, plateau_factor=0.5, plateau_patience=1, min_lr=0.02)
    optimizer, scheduler = _scheduler(**fields)
    reference_optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(
        reference_optimizer, mode=mode, factor=0.5, patience=1, min_lr=0.02
    )
    ours, theirs = [], []
    for value in values:
        _train_epoch(optimizer, scheduler, 3)
        scheduler.end_epoch(value)
        reference.step(value)
        ours.append(optimizer.param_groups[0]["lr"])
        theirs.append(reference_optimizer.param_groups[0]["lr"])
    assert ours == pytest.approx(theirs, rel=1e-12)
    assert min(ours) == pytest.approx(0.02) and ours[0] == 0.1 and len(set(ours)) >= 3


def test_drops_after_more_than_patience_bad_epochs_and_applies_from_the_next_step() -> None:
    optimizer, scheduler = _scheduler(plateau_factor=0.7, plateau_patience=2)
    multipliers = []
    for value in [0.5, 0.4, 0.4, 0.4, 0.4]:
        _train_epoch(optimizer, scheduler, 3)
        scheduler.end_epoch(value)
        multipliers.append(scheduler.plateau.multiplier)
    assert multipliers == [1.0, 1.0, 1.0, 0.7, 0.7]
    assert _train_epoch(optimizer, scheduler, 3) == pytest.approx([0.07] * 3)


def test_composes_with_the_per_iteration_warmup() -> None:
    optimizer, scheduler = _scheduler(steps_per_epoch=4, warmup_epochs=2, plateau_factor=0.5, plateau_patience=0)
    first = _train_epoch(optimizer, scheduler, 4)
    scheduler.end_epoch(0.5)
    scheduler.end_epoch(0.4)
    second = _train_epoch(optimizer, scheduler, 4)
    assert first == pytest.approx([0.1 * (step + 1) / 8 for step in range(4)])
    assert second == pytest.approx([0.5 * 0.1 * (step + 1) / 8 for step in range(4, 8)])


def test_state_round_trips_through_a_weights_only_checkpoint() -> None:
    optimizer, scheduler = _scheduler(plateau_factor=0.5, plateau_patience=0)
    for value in [0.3, 0.2, 0.25]:
        _train_epoch(optimizer, scheduler, 3)
        scheduler.end_epoch(value)
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert saved["scheduler"]["plateau"] == {"multiplier": 0.25, "best": 0.3, "bad_epochs": 0}

    restored_optimizer, restored = _scheduler(plateau_factor=0.5, plateau_patience=0)
    restored_optimizer.load_state_dict(saved["optimizer"])
    restored.load_state_dict(saved["scheduler"])
    for value in [0.2, 0.4, 0.1]:
        assert _train_epoch(restored_optimizer, restored, 3) == _train_epoch(optimizer, scheduler, 3)
        restored.end_epoch(value)
        scheduler.end_epoch(value)
    assert restored.plateau.state_dict() == scheduler.plateau.state_dict()


def test_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="schedule 'plateau' follows the validation 'accuracy'.*val_split is None"):
        check_recipe(apply_overrides(BASE, {"val_split": None}))
    with pytest.raises(ConfigError, match="0 < plateau_factor < 1"):
        check_recipe(apply_overrides(BASE, {"plateau_factor": 1.5}))
    check_recipe(BASE)


def test_resume_with_plateau_continues_exactly(make_config) -> None:
    """With an unreachable threshold the lr halves after every epoch but the first; a resume keeps the multiplier."""
    overrides = {
        "model.dropout": 0.3,
        "schedule": "plateau",
        "warmup_epochs": 0.5,
        "plateau_factor": 0.5,
        "plateau_patience": 0,
        "plateau_threshold": 10.0,
        "epochs": 3,
    }
    uninterrupted = run(make_config("straight", overrides=overrides))
    first = run(make_config("split", overrides=overrides, stop_after_epochs=2))
    assert load_checkpoint(first.last_checkpoint)["scheduler"]["plateau"]["multiplier"] == 0.5
    resumed = run(make_config("split", overrides=overrides, resume="auto"))

    lrs = [entry["lr"] for entry in uninterrupted.history]
    assert lrs == pytest.approx([0.02, 0.02, 0.01])
    assert resumed.history[0]["lr"] == lrs[2]
    for name, value in uninterrupted.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
    assert resumed.history[0]["metrics"] == uninterrupted.history[2]["metrics"]
    assert load_checkpoint(resumed.last_checkpoint)["scheduler"]["plateau"]["multiplier"] == 0.25


def test_checkpoints_older_than_the_plateau_fields_still_resume(make_config, tmp_path) -> None:
    result = run(make_config(epochs=1))
    checkpoint = load_checkpoint(result.last_checkpoint)
    for field in ("plateau_factor", "plateau_patience", "plateau_threshold"):
        del checkpoint["config"]["recipe"][field]
    model_config = checkpoint["config"]["model_config"]
    check_resumable(checkpoint, tmp_path / "old.pt", result.recipe, model_config, seed=0)
