"""One pass over a data loader: training steps or evaluation, with results kept on the device.

Per batch nothing is copied to the host: the loss, every metric's (sum, count) and every layer's firing rate
are added to device tensors in `EpochTotals`, which are summed over DDP processes and read with one transfer
at the end of the epoch. The only exception is the progress bar, whose running loss is read every
`log_every` batches while it is shown.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from zoo.layers.spike_record import firing_rates
from zoo.train.distributed import World, all_reduce_sum
from zoo.train.recipe import Recipe
from zoo.train.registries import get_loss, get_metric

__all__ = ["EpochTotals", "StepContext", "autocast", "evaluate_epoch", "move_to", "train_epoch"]


def move_to(value: Any, device: torch.device) -> Any:
    """`value` (a tensor, or tuples/lists/dicts of them) on `device`, copied asynchronously where possible."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, (tuple, list)):
        return type(value)(move_to(item, device) for item in value)
    if isinstance(value, dict):
        return {key: move_to(item, device) for key, item in value.items()}
    return value


def batch_length(value: Any) -> int:
    """Number of samples in a batch: the leading size of its first tensor."""
    if isinstance(value, torch.Tensor):
        return value.shape[0]
    items = value.values() if isinstance(value, dict) else value
    return batch_length(next(iter(items)))


def autocast(recipe: Recipe, device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed-precision context: autocast to `recipe.amp_dtype` on CUDA when `recipe.amp`, else nothing."""
    if recipe.amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=getattr(torch, recipe.amp_dtype))
    return contextlib.nullcontext()


class EpochTotals:
    """Sums over one epoch, on the device: loss and metrics as (sum, count), firing rates weighted by samples.

    `reduce` sums them over processes and returns ``{"loss": mean, <metric>: mean, ...}`` and
    ``{layer: mean firing rate}`` with a single device-to-host transfer.
    """

    def __init__(self, metrics: tuple[str, ...], device: torch.device) -> None:
        self.names = ("loss", *metrics)
        self.metric_fns = [get_metric(name).fn for name in metrics]
        self.sums = torch.zeros(len(self.names), 2, dtype=torch.float64, device=device)
        self.layers: tuple[str, ...] | None = None
        self.rate_sums: torch.Tensor | None = None
        self.rate_count = torch.zeros((), dtype=torch.float64, device=device)

    def add(self, loss: torch.Tensor, output: Any, target: Any, samples: int, rates: dict[str, torch.Tensor]) -> None:
        """Add one batch of `samples` samples (`loss` is its mean; `rates` are per-layer firing rates)."""
        rows = [torch.stack([loss.detach().double() * samples, torch.full_like(self.sums[0, 0], samples)])]
        for fn in self.metric_fns:
            total, count = fn(output, target)
            rows.append(torch.stack([total.double(), torch.as_tensor(count, device=total.device).double()]))
        self.sums += torch.stack(rows)
        if rates:
            self._add_rates(rates, samples)

    def _add_rates(self, rates: dict[str, torch.Tensor], samples: int) -> None:
        if self.layers is None:
            self.layers = tuple(rates)
            self.rate_sums = torch.zeros(len(self.layers), dtype=torch.float64, device=self.sums.device)
        elif tuple(rates) != self.layers:
            raise RuntimeError(f"firing_rates changed layers between batches: {self.layers} -> {tuple(rates)}")
        self.rate_sums += torch.stack([rate.detach().double() for rate in rates.values()]) * samples
        self.rate_count += samples

    def running_loss(self) -> float:
        """Mean loss so far (reads one number from the device)."""
        return (self.sums[0, 0] / self.sums[0, 1].clamp(min=1)).item()

    def reduce(self, world: World) -> tuple[dict[str, float], dict[str, float]]:
        """Epoch means over all processes: ``(metrics, firing_rates)``."""
        parts = [self.sums.flatten(), self.rate_count.reshape(1)]
        if self.rate_sums is not None:
            parts.append(self.rate_sums)
        values = all_reduce_sum(torch.cat(parts), world).tolist()
        count_index = 2 * len(self.names)
        sums, rate_count, rate_sums = values[:count_index], values[count_index], values[count_index + 1 :]
        metrics = {}
        for i, name in enumerate(self.names):
            metrics[name] = sums[2 * i] / sums[2 * i + 1] if sums[2 * i + 1] else float("nan")
        rates = {layer: total / rate_count for layer, total in zip(self.layers or (), rate_sums, strict=True)}
        return metrics, rates


@dataclasses.dataclass
class StepContext:
    """What a training or evaluation pass needs besides the data."""

    model: nn.Module
    bare_model: nn.Module
    recipe: Recipe
    device: torch.device
    world: World
    show_progress: bool
    log_every: int

    def loss_fn(self) -> Callable[..., torch.Tensor]:
        return get_loss(self.recipe.loss)


def _progress(loader: Iterable, context: StepContext, description: str) -> tqdm:
    return tqdm(loader, desc=description, disable=not context.show_progress, leave=False, dynamic_ncols=True)


def train_epoch(
    context: StepContext,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    description: str,
) -> EpochTotals:
    """One epoch of optimiser steps; the scheduler steps after every optimiser step.

    Per step: forward (under autocast), loss, backward, optional gradient clipping (global L2 norm, after
    unscaling), optimiser step, scheduler step, then ``clamp_parameters()`` if the model defines it.
    """
    recipe, bare = context.recipe, context.bare_model
    loss_fn = context.loss_fn()
    parameters = [parameter for parameter in bare.parameters() if parameter.requires_grad]
    clamp = getattr(bare, "clamp_parameters", None)
    totals = EpochTotals(recipe.metrics, context.device)
    context.model.train()
    bar = _progress(loader, context, description)
    for index, (inputs, target) in enumerate(bar):
        inputs, target = move_to(inputs, context.device), move_to(target, context.device)
        with autocast(recipe, context.device):
            output = context.model(inputs)
            loss = loss_fn(output, target, bare, **recipe.loss_options)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if recipe.grad_clip is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(parameters, recipe.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if clamp is not None:
            with torch.no_grad():
                clamp()
        with torch.no_grad():
            totals.add(loss, _detach(output), target, batch_length(target), firing_rates(bare))
        if context.show_progress and (index + 1) % context.log_every == 0:
            bar.set_postfix(loss=f"{totals.running_loss():.4f}")
    return totals


@torch.no_grad()
def evaluate_epoch(context: StepContext, loader: Iterable, description: str) -> EpochTotals:
    """Loss, metrics and firing rates of the bare model in eval mode over `loader` (no gradients)."""
    recipe, bare = context.recipe, context.bare_model
    loss_fn = context.loss_fn()
    totals = EpochTotals(recipe.metrics, context.device)
    bare.eval()
    for inputs, target in _progress(loader, context, description):
        inputs, target = move_to(inputs, context.device), move_to(target, context.device)
        with autocast(recipe, context.device):
            output = bare(inputs)
            loss = loss_fn(output, target, bare, **recipe.loss_options)
        totals.add(loss, output, target, batch_length(target), firing_rates(bare))
    return totals


def _detach(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return output.detach()
    if isinstance(output, (tuple, list)):
        return type(output)(_detach(item) for item in output)
    if isinstance(output, dict):
        return {key: _detach(item) for key, item in output.items()}
    return output
