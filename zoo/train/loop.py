"""One pass over a data loader: training steps or evaluation, with results kept on the device.

Per training batch nothing is copied to the host: the loss, every metric's (sum, count) and every layer's firing
rate (`zoo.firing_rates`) are added to device tensors in `EpochTotals`, which are summed over DDP processes and read
with one transfer at the end of the epoch. The exceptions are the progress bar, whose running loss is read every
`log_every` batches while it is shown, and metrics registered with ``during_training=False`` (decoding on the
host), which only evaluation passes compute. `EpochTotals` also times the epoch and the waits for data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from zoo.layers.spike_record import firing_rates
from zoo.train.data import Batches
from zoo.train.distributed import World, all_reduce_sum
from zoo.train.interrupt import Interrupt
from zoo.train.recipe import Recipe
from zoo.train.registries import get_loss, get_metric, get_step_hook

__all__ = ["EpochTotals", "StepContext", "autocast", "evaluate_epoch", "move_to", "run_model", "train_epoch"]


def move_to(value: Any, device: torch.device) -> Any:
    """`value` (a tensor, or tuples/lists/dicts of them) on `device`, copied asynchronously where possible."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, (tuple, list)):
        return type(value)(move_to(item, device) for item in value)
    if isinstance(value, dict):
        return {key: move_to(item, device) for key, item in value.items()}
    return value


def run_model(model: nn.Module, inputs: Any) -> Any:
    """`model` on a batch's inputs: a tensor as its one argument, a tuple or list as positional arguments (e.g.
    ``(features, lengths)``), a dict as keyword arguments (the names of the model's input specs)."""
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    if isinstance(inputs, dict):
        return model(**inputs)
    return model(inputs)


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

    Attributes (host side, this process only):
        steps: batches done. seconds: time spent in the pass. wait_seconds: part of it spent waiting for data.
        stopped: the pass ended early on an `Interrupt`.
    """

    def __init__(self, metrics: tuple[str, ...], device: torch.device, training: bool = False) -> None:
        """`metrics`: registered metric names; with `training`, those registered ``during_training=False`` are
        left out."""
        entries = [get_metric(name) for name in metrics]
        entries = [entry for entry in entries if entry.during_training or not training]
        self.names = ("loss", *(entry.name for entry in entries))
        self.metric_fns = [entry.fn for entry in entries]
        self.sums = torch.zeros(len(self.names), 2, dtype=torch.float64, device=device)
        self.layers: tuple[str, ...] | None = None
        self.rate_sums: torch.Tensor | None = None
        self.rate_count = torch.zeros((), dtype=torch.float64, device=device)
        self.steps = 0
        self.seconds = 0.0
        self.wait_seconds = 0.0
        self.stopped = False

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

    @property
    def data_wait(self) -> float:
        """Fraction of the pass's time spent waiting for the data loader (0 when nothing ran)."""
        return self.wait_seconds / self.seconds if self.seconds > 0 else 0.0

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

    def state_dict(self) -> dict[str, Any]:
        """The partial sums of an interrupted epoch (plain data and CPU tensors, for a checkpoint)."""
        return {
            "sums": self.sums.cpu(),
            "layers": self.layers,
            "rate_sums": None if self.rate_sums is None else self.rate_sums.cpu(),
            "rate_count": self.rate_count.cpu(),
            "steps": self.steps,
            "seconds": self.seconds,
            "wait_seconds": self.wait_seconds,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict` (same metrics)."""
        device = self.sums.device
        self.sums = state["sums"].to(device)
        self.layers = None if state["layers"] is None else tuple(state["layers"])
        self.rate_sums = None if state["rate_sums"] is None else state["rate_sums"].to(device)
        self.rate_count = state["rate_count"].to(device)
        self.steps, self.seconds, self.wait_seconds = state["steps"], state["seconds"], state["wait_seconds"]


@dataclasses.dataclass
class StepContext:
    """What a training or evaluation pass needs besides the data.

    `total_steps` (the run's planned optimiser steps) goes to the step hooks; `interrupt`, when given, can end a
    training pass after any step.
    """

    model: nn.Module
    bare_model: nn.Module
    recipe: Recipe
    device: torch.device
    world: World
    show_progress: bool
    log_every: int
    total_steps: int = 0
    interrupt: Interrupt | None = None

    def loss_fn(self) -> Callable[..., torch.Tensor]:
        return get_loss(self.recipe.loss)


def _progress(loader: Iterable, context: StepContext, description: str, total: int) -> tqdm:
    return tqdm(
        loader, desc=description, total=total, disable=not context.show_progress, leave=False, dynamic_ncols=True
    )


def train_epoch(
    context: StepContext,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    description: str,
    totals: EpochTotals | None = None,
    after_replay: Callable[[], None] | None = None,
) -> EpochTotals:
    """One epoch of optimiser steps; the scheduler steps after every optimiser step.

    Per step: forward (under autocast), loss, backward, optional gradient clipping (global L2 norm, after
    unscaling), optimiser step, scheduler step, then the recipe's step hooks (``after_step``, in order, with the
    number of steps taken). `totals` of an epoch interrupted earlier continue it: its first ``totals.steps``
    batches are drawn again but not trained on, then `after_replay` runs (the engine restores the random states
    saved at the interruption). The pass ends early when ``context.interrupt`` asks for it.
    """
    recipe, bare = context.recipe, context.bare_model
    loss_fn = context.loss_fn()
    hooks = [(get_step_hook(name), options) for name, options in recipe.after_step.items()]
    parameters = [parameter for parameter in bare.parameters() if parameter.requires_grad]
    totals = totals if totals is not None else EpochTotals(recipe.metrics, context.device, training=True)
    interrupt = context.interrupt
    stopping = None if interrupt is None else (lambda: interrupt.received is not None)
    batches = Batches(loader, f"dataset {recipe.dataset!r}, split 'train'", totals.steps, after_replay, stopping)
    context.model.train()
    started = time.perf_counter()
    bar = _progress(batches, context, description, len(batches))
    try:
        for inputs, target in bar:
            inputs, target = move_to(inputs, context.device), move_to(target, context.device)
            with autocast(recipe, context.device):
                output = run_model(context.model, inputs)
                loss = loss_fn(output, target, bare, **recipe.loss_options)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if recipe.grad_clip is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(parameters, recipe.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step = scheduler.last_epoch
            with torch.no_grad():
                for hook, options in hooks:
                    hook(bare, step, context.total_steps, **options)
                totals.add(loss, _detach(output), target, batch_length(target), firing_rates(bare))
            totals.steps += 1
            if context.show_progress and totals.steps % context.log_every == 0:
                bar.set_postfix(loss=f"{totals.running_loss():.4f}")
            if interrupt is not None and interrupt.requested(step):
                totals.stopped = True
                break
        else:
            totals.stopped = totals.steps < len(loader) and interrupt is not None and interrupt.received is not None
    finally:
        bar.close()
        totals.seconds += time.perf_counter() - started
        totals.wait_seconds += batches.wait_seconds
    return totals


@torch.no_grad()
def evaluate_epoch(context: StepContext, loader: Iterable, description: str, split: str = "val") -> EpochTotals:
    """Loss, metrics and firing rates of the bare model in eval mode over `loader` (no gradients)."""
    recipe, bare = context.recipe, context.bare_model
    loss_fn = context.loss_fn()
    totals = EpochTotals(recipe.metrics, context.device)
    batches = Batches(loader, f"dataset {recipe.dataset!r}, split {split!r}")
    bare.eval()
    started = time.perf_counter()
    for inputs, target in _progress(batches, context, description, len(batches)):
        inputs, target = move_to(inputs, context.device), move_to(target, context.device)
        with autocast(recipe, context.device):
            output = run_model(bare, inputs)
            loss = loss_fn(output, target, bare, **recipe.loss_options)
        totals.add(loss, output, target, batch_length(target), firing_rates(bare))
        totals.steps += 1
    totals.seconds = time.perf_counter() - started
    totals.wait_seconds = batches.wait_seconds
    return totals


def _detach(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return output.detach()
    if isinstance(output, (tuple, list)):
        return type(output)(_detach(item) for item in output)
    if isinstance(output, dict):
        return {key: _detach(item) for key, item in output.items()}
    return output
