"""Optimiser with per-parameter-group weight decay, and the learning-rate schedule stepped every iteration.

Schedule (``lr(s) = recipe.lr * lr_factor(s)`` for optimiser step s = 0, 1, ...; S = steps per epoch):

- warm-up: ``W = round(warmup_epochs * S)`` steps; for ``s < W`` the factor is ``(s + 1) / W`` (linear, the
  first step already uses ``lr / W``, step W - 1 uses the full lr).
- afterwards the decay reads the elapsed epochs ``e = s / S`` (``schedule_unit="iteration"``) or ``floor(s / S)``
  (``schedule_unit="epoch"``, constant within an epoch like a per-epoch PyTorch scheduler), and the decay
  progress ``p = clamp((e - warmup_epochs) / (epochs - warmup_epochs), 0, 1)``:
  ``constant``: 1; ``cosine``: ``r + (1 - r) * (1 + cos(pi * p)) / 2`` with ``r = min_lr / lr``;
  ``step``: ``step_gamma ** (number of step_milestones <= e)`` (milestones in epochs from the start of training).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from zoo.train.errors import ConfigError
from zoo.train.recipe import Recipe

__all__ = ["OPTIMIZERS", "SCHEDULES", "build_optimizer", "build_scheduler", "lr_factor", "parameter_groups"]

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
SCHEDULES = ("constant", "cosine", "step")
SCHEDULE_UNITS = ("iteration", "epoch")


def parameter_groups(model: nn.Module, weight_decay: float, no_weight_decay: tuple[str, ...]) -> list[dict]:
    """Trainable parameters split into a decayed group and a group with weight decay 0.

    A parameter goes to the no-decay group when its name (as in ``model.named_parameters()``) contains any of
    the `no_weight_decay` substrings. Empty groups are left out.
    """
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            excluded = any(pattern in name for pattern in no_weight_decay)
            (no_decay if excluded else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


def build_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimiser over `parameter_groups`, at the peak learning rate `recipe.lr`."""
    groups = parameter_groups(model, recipe.weight_decay, recipe.no_weight_decay)
    if not groups:
        raise ConfigError(f"model {recipe.model!r} has no trainable parameters")
    try:
        return OPTIMIZERS[recipe.optimizer](groups, lr=recipe.lr, **recipe.optimizer_options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"optimizer {recipe.optimizer!r} with options {recipe.optimizer_options}: {error}") from None


def lr_factor(step: int, steps_per_epoch: int, recipe: Recipe) -> float:
    """Multiplier of `recipe.lr` for optimiser step `step` (0-based); see the module docstring for the formula."""
    warmup_steps = round(recipe.warmup_epochs * steps_per_epoch)
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    elapsed = step / steps_per_epoch
    if recipe.schedule_unit == "epoch":
        elapsed = math.floor(elapsed)
    if recipe.schedule == "constant":
        return 1.0
    if recipe.schedule == "step":
        return recipe.step_gamma ** sum(milestone <= elapsed for milestone in recipe.step_milestones)
    decay_epochs = recipe.epochs - recipe.warmup_epochs
    progress = min(max((elapsed - recipe.warmup_epochs) / decay_epochs, 0.0), 1.0)
    floor = recipe.min_lr / recipe.lr
    return floor + (1.0 - floor) * (1.0 + math.cos(math.pi * progress)) / 2.0


def build_scheduler(
    optimizer: torch.optim.Optimizer, steps_per_epoch: int, recipe: Recipe
) -> torch.optim.lr_scheduler.LambdaLR:
    """A `LambdaLR` applying `lr_factor`; call ``scheduler.step()`` after every optimiser step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, steps_per_epoch, recipe))
