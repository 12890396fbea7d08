"""Learning-rate schedule formula, per-parameter-group weight decay, and the recipe/override plumbing."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.train import ConfigError, Recipe
from zoo.train.config import apply_overrides, parse_overrides
from zoo.train.losses import cross_entropy
from zoo.train.metrics import accuracy
from zoo.train.optim import build_optimizer, build_scheduler, lr_factor, parameter_groups
from zoo.train.registries import higher_is_better, register_metric

from .conftest import tiny

BASE = Recipe(name="schedule", model=tiny.MODEL, dataset=tiny.DATASET, lr=0.1, epochs=10)


def _recipe(**fields) -> Recipe:
    return apply_overrides(BASE, fields)


def test_warmup_is_linear_per_iteration():
    recipe = _recipe(warmup_epochs=0.5, schedule="cosine")
    assert [lr_factor(step, 10, recipe) for step in range(5)] == [0.2, 0.4, 0.6, 0.8, 1.0]


def test_cosine_decays_from_the_end_of_warmup_to_min_lr():
    recipe = _recipe(warmup_epochs=1, schedule="cosine", min_lr=0.01)
    floor = 0.01 / 0.1
    assert lr_factor(10, 10, recipe) == 1.0
    assert lr_factor(10 + 45, 10, recipe) == pytest.approx(floor + (1 - floor) / 2)
    assert lr_factor(99, 10, recipe) == pytest.approx(floor + (1 - floor) * (1 + math.cos(math.pi * 89 / 90)) / 2)
    by_epoch = _recipe(warmup_epochs=1, schedule="cosine", min_lr=0.01, schedule_unit="epoch")
    assert lr_factor(55, 10, by_epoch) == lr_factor(50, 10, by_epoch) == lr_factor(50, 10, recipe)


def test_step_schedule_multiplies_at_milestones():
    recipe = _recipe(schedule="step", step_milestones=(3, 6), step_gamma=0.5)
    assert [lr_factor(step, 10, recipe) for step in (0, 29, 30, 59, 60, 99)] == [1, 1, 0.5, 0.5, 0.25, 0.25]


def test_scheduler_sets_the_optimizer_lr_every_step():
    recipe = _recipe(warmup_epochs=0.5, schedule="cosine")
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(model, recipe)
    scheduler = build_scheduler(optimizer, 4, recipe)
    for step in range(8):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * lr_factor(step, 4, recipe))
        optimizer.step()
        scheduler.step()


def test_no_weight_decay_substrings_form_their_own_group():
    model = tiny.tiny_mlp(hidden=4)
    model.encoder.weight.requires_grad_(False)
    groups = parameter_groups(model, 0.05, ("bias", "leak"))
    decayed, excluded = groups
    assert decayed["weight_decay"] == 0.05 and [p.shape for p in decayed["params"]] == [model.head.weight.shape]
    assert excluded["weight_decay"] == 0.0 and len(excluded["params"]) == 3
    assert len(parameter_groups(model, 0.05, ())) == 1


def test_overrides_parse_literals_and_merge_into_groups():
    parsed = parse_overrides(["lr=3e-4", "schedule=cosine", "model.hidden=8", "data.scale=(1, 2)", "amp=False"])
    assert parsed == {"lr": 3e-4, "schedule": "cosine", "model.hidden": 8, "data.scale": (1, 2), "amp": False}
    recipe = apply_overrides(_recipe(model_overrides={"dropout": 0.1}), {"model.hidden": 8, "metrics": "accuracy"})
    assert recipe.model_overrides == {"dropout": 0.1, "hidden": 8} and recipe.metrics == ("accuracy",)
    with pytest.raises(ConfigError, match="overrides must be a list"):
        parse_overrides("lr=1")


def test_builtin_loss_metric_and_directions():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    target = torch.tensor([0, 0, 0])
    assert [int(value) for value in accuracy((logits, "extra"), target)] == [2, 3]
    expected = torch.nn.functional.cross_entropy(logits, target)
    assert torch.equal(cross_entropy((logits,), target, model=None), expected)
    assert higher_is_better("accuracy") and not higher_is_better("loss")
    with pytest.raises(ValueError, match="metric 'accuracy' is already registered"):
        register_metric("accuracy")(accuracy)
