"""Registries of datasets, losses and metrics that recipes refer to by name, with the built-in entries.

- dataset: ``factory(root, split, **options) -> torch.utils.data.Dataset`` yielding ``(input, target)`` items,
  input batch-first minus the batch axis; split is ``"train"``, ``"val"`` or ``"test"``. If the dataset has a
  ``collate_fn`` attribute, loaders batch with it (e.g. to pad variable-length sequences). A factory raising
  OSError/ValueError/KeyError/TypeError is reported as a configuration error naming the split.
- loss: ``fn(output, target, model, **options) -> Tensor`` (scalar, mean over the batch). `model` is the bare
  model (never the DDP wrapper), so a loss can read e.g. ``model.firing_rates()`` for a spike regulariser.
- metric: ``fn(output, target) -> (sum, count)`` for one batch, as tensors on the output's device; the engine
  reports sum / count over the epoch (summed across DDP processes). `higher_is_better` tells best-checkpoint
  selection the direction. ``"loss"`` is always reported (lower is better) and needs no registration.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.train.errors import ConfigError

__all__ = [
    "DatasetFactory",
    "LossFn",
    "MetricEntry",
    "MetricFn",
    "check_options",
    "get_dataset",
    "get_loss",
    "get_metric",
    "higher_is_better",
    "logits_of",
    "register_dataset",
    "register_loss",
    "register_metric",
]

DatasetFactory = Callable[..., torch.utils.data.Dataset]
LossFn = Callable[..., torch.Tensor]
MetricFn = Callable[[Any, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclasses.dataclass(frozen=True)
class MetricEntry:
    """A registered metric and its direction for best-checkpoint selection."""

    name: str
    fn: MetricFn
    higher_is_better: bool


_DATASETS: dict[str, DatasetFactory] = {}
_LOSSES: dict[str, LossFn] = {}
_METRICS: dict[str, MetricEntry] = {}


def _register(table: dict[str, Any], kind: str, name: str, value: Any) -> None:
    if name in table:
        raise ValueError(f"{kind} {name!r} is already registered")
    table[name] = value


def register_dataset(name: str) -> Callable[[DatasetFactory], DatasetFactory]:
    """Decorator registering ``factory(root, split, **options) -> Dataset`` under `name`."""

    def decorator(factory: DatasetFactory) -> DatasetFactory:
        _register(_DATASETS, "dataset", name, factory)
        return factory

    return decorator


def register_loss(name: str) -> Callable[[LossFn], LossFn]:
    """Decorator registering ``fn(output, target, model, **options) -> scalar Tensor`` under `name`."""

    def decorator(fn: LossFn) -> LossFn:
        _register(_LOSSES, "loss", name, fn)
        return fn

    return decorator


def register_metric(name: str, *, higher_is_better: bool = True) -> Callable[[MetricFn], MetricFn]:
    """Decorator registering ``fn(output, target) -> (sum, count)`` under `name`.

    `higher_is_better` is the direction used when the metric selects the best checkpoint (accuracy: True;
    an error such as a mean distance: False).
    """

    def decorator(fn: MetricFn) -> MetricFn:
        _register(_METRICS, "metric", name, MetricEntry(name, fn, higher_is_better))
        return fn

    return decorator


def _lookup(table: dict[str, Any], kind: str, name: str) -> Any:
    from zoo.train.recipe import list_recipes

    list_recipes()  # importing the family recipes registers their datasets, losses and metrics
    if name not in table:
        close = difflib.get_close_matches(name, list(table), n=5, cutoff=0.4)
        hint = f"closest: {', '.join(close)}" if close else f"available: {', '.join(sorted(table)) or '(none)'}"
        raise ConfigError(f"unknown {kind} {name!r}; {hint}")
    return table[name]


def get_dataset(name: str) -> DatasetFactory:
    """The dataset factory registered as `name` (`ConfigError` if unknown)."""
    return _lookup(_DATASETS, "dataset", name)


def get_loss(name: str) -> LossFn:
    """The loss registered as `name` (`ConfigError` if unknown)."""
    return _lookup(_LOSSES, "loss", name)


def get_metric(name: str) -> MetricEntry:
    """The metric registered as `name` (`ConfigError` if unknown)."""
    return _lookup(_METRICS, "metric", name)


def higher_is_better(metric: str) -> bool:
    """Selection direction of `metric`: False for ``"loss"``, else the direction it was registered with."""
    return False if metric == "loss" else get_metric(metric).higher_is_better


def check_options(fn: Callable[..., Any], what: str, leading: tuple[Any, ...], options: dict[str, Any]) -> None:
    """Raise `ConfigError` if `fn(*leading, **options)` would not accept the option names.

    Functions that take ``**kwargs`` accept anything here; they must reject unknown options themselves.
    """
    try:
        inspect.signature(fn).bind(*leading, **options)
    except TypeError as error:
        parameters = [
            name
            for name, parameter in inspect.signature(fn).parameters.items()
            if parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)
        ][len(leading) :]
        raise ConfigError(f"{what}: {error}; valid options: {', '.join(parameters) or '(none)'}") from None


def logits_of(output: Any) -> torch.Tensor:
    """The logits of a model output: the tensor itself or the first item of a tuple/list."""
    return output[0] if isinstance(output, (tuple, list)) else output


@register_loss("cross_entropy")
def cross_entropy(output: Any, target: torch.Tensor, model: nn.Module, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy of logits ``[B, C]`` (or the first item of a tuple output) against class indices ``[B]``."""
    return F.cross_entropy(logits_of(output).float(), target, label_smoothing=label_smoothing)


@register_metric("accuracy", higher_is_better=True)
def accuracy(output: Any, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-1 accuracy (fraction in [0, 1]) of logits ``[B, C]`` against class indices ``[B]``: (correct, count)."""
    correct = (logits_of(output).argmax(dim=-1) == target).sum()
    return correct, torch.full((), target.shape[0], device=target.device)
