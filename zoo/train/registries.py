"""Registries of the losses, metrics and step hooks that recipes refer to by name (datasets: `zoo.datasets`).

This module registers nothing and imports no family: the shared losses live in `zoo.train.losses`, the
shared metrics in `zoo.train.metrics`, the shared step hooks in `zoo.train.hooks`, family ones in
``zoo/train/recipes/<family>.py``; importing `zoo.train` imports all of them once. Registering a name twice (e.g.
a ``--plugin`` reusing a built-in name) is a `ConfigError`.

Losses and step hooks list their options as keyword parameters with defaults and type hints (as model builders
and datasets do), so that recipes' options are checked and converted before training (`checked_options`).

- loss: ``fn(output, target, model, **options) -> Tensor`` (scalar, mean over the batch). `model` is the bare
  model (never the DDP wrapper), so a loss can read e.g. ``zoo.spike_penalty(model)`` for a spike regulariser.
- metric: ``fn(output, target) -> (sum, count)`` for one batch, as tensors on the output's device; the engine
  reports sum / count over the epoch (summed across DDP processes). `higher_is_better` tells best-checkpoint
  selection the direction. ``"loss"`` is always reported (lower is better) and needs no registration.
- step hook: ``fn(model, step, total_steps, **options) -> None``, run by the engine after every optimiser step,
  in the order of the recipe's ``after_step`` mapping ``{hook name: options}``, under ``torch.no_grad()``, on the
  bare model. `step` counts the optimiser steps taken so far including this one (1, 2, ...), `total_steps` is the
  run's planned number (epochs x steps per epoch). A hook keeps its state (e.g. an EMA teacher's weights) in the
  model's parameters or buffers, so checkpoints and resumption carry it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch

from zoo.errors import ConfigError
from zoo.names import NameTable
from zoo.options import check_options, declared_options

__all__ = [
    "LossFn",
    "MetricEntry",
    "MetricFn",
    "StepHook",
    "checked_options",
    "get_loss",
    "get_metric",
    "get_step_hook",
    "higher_is_better",
    "list_losses",
    "list_metrics",
    "list_step_hooks",
    "logits_of",
    "register_loss",
    "register_metric",
    "register_step_hook",
]

LossFn = Callable[..., torch.Tensor]
MetricFn = Callable[[Any, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
StepHook = Callable[..., None]


@dataclasses.dataclass(frozen=True)
class MetricEntry:
    """A registered metric, its direction for best-checkpoint selection, and whether training passes compute it."""

    name: str
    fn: MetricFn
    higher_is_better: bool
    during_training: bool = True


_LOSSES: NameTable[LossFn] = NameTable("loss")
_METRICS: NameTable[MetricEntry] = NameTable("metric")
_STEP_HOOKS: NameTable[StepHook] = NameTable("step hook")


def register_loss(name: str) -> Callable[[LossFn], LossFn]:
    """Decorator registering ``fn(output, target, model, **options) -> scalar Tensor`` under `name`."""

    def decorator(fn: LossFn) -> LossFn:
        declared_options(fn, skip=3)
        _LOSSES.add(name, fn, fn.__module__)
        return fn

    return decorator


def register_metric(
    name: str, *, higher_is_better: bool = True, during_training: bool = True
) -> Callable[[MetricFn], MetricFn]:
    """Decorator registering ``fn(output, target) -> (sum, count)`` under `name`.

    `higher_is_better` is the direction used when the metric selects the best checkpoint (accuracy: True;
    an error such as a mean distance: False). ``during_training=False`` leaves the metric out of training passes
    (it is computed in validation and evaluation only): for metrics that need the host, such as decoding and edit
    distances, which would otherwise stall every training step.
    """

    def decorator(fn: MetricFn) -> MetricFn:
        entry = MetricEntry(name, fn, higher_is_better, during_training)
        _METRICS.add(name, entry, getattr(fn, "__module__", "?"))
        return fn

    return decorator


def register_step_hook(name: str) -> Callable[[StepHook], StepHook]:
    """Decorator registering ``fn(model, step, total_steps, **options)`` under `name` (see the module docstring)."""

    def decorator(fn: StepHook) -> StepHook:
        declared_options(fn, skip=3)
        _STEP_HOOKS.add(name, fn, fn.__module__)
        return fn

    return decorator


def get_loss(name: str) -> LossFn:
    """The loss registered as `name` (`ConfigError` if unknown)."""
    return _LOSSES.get(name)


def get_metric(name: str) -> MetricEntry:
    """The metric registered as `name` (`ConfigError` if unknown)."""
    return _METRICS.get(name)


def get_step_hook(name: str) -> StepHook:
    """The step hook registered as `name` (`ConfigError` if unknown)."""
    return _STEP_HOOKS.get(name)


def list_losses(pattern: str | None = None) -> list[str]:
    """Sorted registered loss names (fnmatch `pattern` optional)."""
    return _LOSSES.names(pattern)


def list_metrics(pattern: str | None = None) -> list[str]:
    """Sorted registered metric names (fnmatch `pattern` optional)."""
    return _METRICS.names(pattern)


def list_step_hooks(pattern: str | None = None) -> list[str]:
    """Sorted registered step-hook names (fnmatch `pattern` optional)."""
    return _STEP_HOOKS.names(pattern)


def higher_is_better(metric: str) -> bool:
    """Selection direction of `metric`: False for ``"loss"``, else the direction it was registered with."""
    return False if metric == "loss" else get_metric(metric).higher_is_better


def checked_options(fn: Callable[..., Any], what: str, skip: int, options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` checked against the keyword options `fn` declares after its first `skip` parameters, converted.

    The options are read with `zoo.options.declared_options` (each needs a default and a type hint) and checked
    with `zoo.options.check_options` (``parse=True``: command-line strings are parsed with the option's hint), the
    checker of the model options. `what` (e.g. ``"loss 'sparch'"``) prefixes the message.

    Raises:
        ConfigError: an unknown option (with the closest names and the full list) or a value of the wrong type.
    """
    try:
        _, hints = declared_options(fn, skip=skip)
        return check_options(options, hints, owner=what, parse=True)
    except TypeError as error:
        raise ConfigError(str(error)) from None


def logits_of(output: Any) -> torch.Tensor:
    """The logits of a model output: the tensor itself or the first item of a tuple/list."""
    return output[0] if isinstance(output, (tuple, list)) else output
