"""Extension points of the engine: step hooks after every optimiser step, parameter groups, layer-wise lr decay."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from zoo.errors import ConfigError
from zoo.train import Recipe, run
from zoo.train.checkpoint import load_checkpoint
from zoo.train.config import apply_overrides
from zoo.train.hooks import ema, ema_momentum
from zoo.train.optim import build_optimizer, layer_lr_scales, layer_ranks, lr_factor, parameter_groups

from .conftest import tiny


class Encoder(nn.Module):
    """embed -> blocks.0 .. blocks.11 -> norm -> head (the block numbers sort numerically, not as text)."""

    def __init__(self, blocks: int = 12) -> None:
        super().__init__()
        self.embed = nn.Linear(2, 3)
        self.blocks = nn.ModuleList(nn.Linear(3, 3) for _ in range(blocks))
        self.norm = nn.LayerNorm(3)
        self.head = nn.Linear(3, 2)


def test_layer_ranks_number_layers_from_the_input():
    model = Encoder()
    names = [name for name, _ in model.named_parameters()]
    ranks, count = layer_ranks(names, ("embed.*", "blocks.{i}.*"))
    assert count == 13
    assert ranks["embed.weight"] == ranks["embed.bias"] == 0
    assert [ranks[f"blocks.{k}.weight"] for k in range(12)] == list(range(1, 13))
    assert ranks["norm.weight"] == ranks["head.bias"] == 13
    scales = layer_lr_scales(names, ("embed.*", "blocks.{i}.*"), 0.5)
    assert scales["head.weight"] == 1.0 and scales["blocks.11.bias"] == 0.5 and scales["blocks.10.weight"] == 0.25
    assert scales["embed.weight"] == 0.5**13
    with pytest.raises(ConfigError, match="layers pattern 'encoder.{i}.\\*' matches no trainable parameter"):
        layer_ranks(names, ("encoder.{i}.*",))


def test_parameter_groups_take_the_first_matching_rule():
    model = Encoder(blocks=2)
    rules = (
        {"params": "embed.*", "lr_scale": 0.1, "betas": (0.8, 0.9)},
        {"params": ("*.bias", "norm.*"), "weight_decay": 0.5},
    )
    groups = parameter_groups(model, 0.05, ("norm",), rules)
    named = {id(parameter): name for name, parameter in model.named_parameters()}
    described = [
        (sorted(named[id(p)] for p in group["params"]), group["weight_decay"], group["lr_scale"], group.get("betas"))
        for group in groups
    ]
    assert described == [
        (["embed.bias", "embed.weight"], 0.05, 0.1, (0.8, 0.9)),
        (["blocks.0.bias", "blocks.1.bias", "head.bias", "norm.bias", "norm.weight"], 0.5, 1.0, None),
        (["blocks.0.weight", "blocks.1.weight", "head.weight"], 0.05, 1.0, None),
    ]
    with pytest.raises(ConfigError, match=r"param_groups\[0\] pattern\(s\) decoder.\* match no trainable parameter"):
        parameter_groups(model, 0.0, (), ({"params": "decoder.*"},))
    with pytest.raises(ConfigError, match=r"param_groups\[0\] needs 'params'"):
        parameter_groups(model, 0.0, (), ({"lr_scale": 2.0},))


def test_layer_decay_and_rules_multiply_and_start_the_optimizer_at_scaled_lrs():
    model = Encoder(blocks=2)
    recipe = Recipe(
        name="groups",
        model=tiny.MODEL,
        dataset=tiny.DATASET,
        optimizer="adamw",
        lr=0.1,
        param_groups=({"params": "head.*", "lr_scale": 2.0},),
        layers=("embed.*", "blocks.{i}.*"),
        layer_decay=0.5,
    )
    optimizer = build_optimizer(model, recipe)
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    lrs = {names[id(p)]: group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert lrs["head.weight"] == pytest.approx(0.2)
    assert lrs["norm.weight"] == pytest.approx(0.1)
    assert lrs["blocks.1.weight"] == pytest.approx(0.05) and lrs["blocks.0.bias"] == pytest.approx(0.025)
    assert lrs["embed.weight"] == pytest.approx(0.0125)
    with pytest.raises(ConfigError, match=r"param_groups\[0\]: 'adamw' has no setting 'momentum'"):
        build_optimizer(model, apply_overrides(recipe, {"param_groups": ({"params": "head.*", "momentum": 0.9},)}))


def test_scaled_groups_follow_the_schedule_in_a_run(make_config):
    overrides = {"param_groups": ({"params": "encoder.*", "lr_scale": 0.25},), "epochs": 2}
    result = run(make_config(overrides=overrides))
    groups = load_checkpoint(result.last_checkpoint)["optimizer"]["param_groups"]
    encoder = [group for group in groups if group["lr_scale"] == 0.25]
    others = [group for group in groups if group["lr_scale"] == 1.0]
    assert len(encoder) == 2 and len(others) == 2
    assert all(group["lr"] == pytest.approx(0.25 * others[0]["lr"]) for group in encoder)
    assert others[0]["lr"] == pytest.approx(0.02 * lr_factor(8, 4, result.recipe))


def test_step_hooks_run_after_every_step_in_order_with_the_step_count(make_config):
    result = run(make_config(overrides=["after_step.test-record={}"]))
    steps = 3 * (64 // 16)
    assert result.model.hook_calls == [(step, steps) for step in range(1, steps + 1)]
    assert result.model.clamp_calls == steps, "adding a hook keeps the default clamp_parameters"
    plain = run(make_config("plain", overrides={"after_step": {}, "epochs": 1}))
    assert plain.model.clamp_calls == 0 and not hasattr(plain.model, "hook_calls")


@pytest.mark.parametrize(
    ("after_step", "match"),
    [
        ({"clamp_parametres": {}}, r"unknown step hook 'clamp_parametres'; closest: clamp_parameters"),
        (
            {"ema": {"momentun": 0.9}},
            r"step hook 'ema': unknown option 'momentun' \(did you mean momentum, final_momentum\?\); valid options: "
            r"final_momentum, momentum, student, teacher",
        ),
    ],
)
def test_bad_step_hooks_are_configuration_errors(make_config, after_step, match):
    with pytest.raises(ConfigError, match=match):
        run(make_config(overrides={"after_step": after_step}, dry_run=True))


class StudentTeacher(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.student = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
        self.teacher = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).requires_grad_(False)


def test_ema_moves_the_teacher_towards_the_student_with_the_cosine_momentum():
    torch.manual_seed(0)
    model = StudentTeacher()
    before = {name: value.clone() for name, value in model.teacher.named_parameters()}
    ema(model, step=5, total_steps=9, momentum=0.9, final_momentum=1.0)
    m = 1.0 - 0.1 * (1 + math.cos(math.pi * 4 / 9)) / 2
    for name, value in model.teacher.named_parameters():
        expected = m * before[name] + (1 - m) * model.student.get_parameter(name)
        torch.testing.assert_close(value, expected, rtol=0, atol=1e-7)
    assert ema_momentum(1, 9, 0.9, 1.0) == 0.9 and ema_momentum(10, 9, 0.9, 1.0) == 1.0
    model.teacher.requires_grad_(True)
    with pytest.raises(ValueError, match="teacher 'teacher' has trainable parameters"):
        ema(model, step=1, total_steps=9)
    with pytest.raises(ValueError, match="ema: "):
        ema(model, step=1, total_steps=9, teacher="target")
