"""`run(config)`: check everything, then train with validation, checkpoints and logs, in one or many processes.

Order of work: plugins imported; recipe resolved (overrides applied and checked); model config resolved;
device chosen; dataset root, run directory and resume checkpoint checked; datasets, loaders, model, optimiser
and schedule built - every `ConfigError` is raised here, before the process group is joined and before any
step; finally a probe write in the run directory and a free-space check (room for the checkpoints), so that an
unwritable folder or a full disk fails now, not after an epoch of work. Then, per epoch: train, evaluate
`val_split`, write ``last.pt`` (and ``best.pt`` on improvement; with `Recipe.average_last` N > 0 also the weights
``epoch-<k>.pt`` of the last N epochs and, after the final epoch, ``averaged.pt``, their mean, evaluated on
`val_split`) atomically, log
(``train.log``, ``metrics.csv``, the console through the ``zoo.train`` logger), including the fraction of the
training time spent waiting for data.
Under torchrun only rank 0 writes files and shows progress bars.

SIGINT / SIGTERM during training (`zoo.train.interrupt`): the current step finishes, ``last.pt`` is written
atomically with the state after that step (model, optimiser, schedule, random states, the partial epoch's sums and
its step count, per process), and `run` returns with ``RunResult.interrupted`` set. ``--resume auto`` continues
bit-exactly: the interrupted epoch's order is a function of (seed, epoch), its first steps' batches are drawn again
without training (so random augmentations continue exactly) and the random states are restored before the next one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import json
import logging
import math
import os
import random
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import zoo
from zoo.errors import ConfigError
from zoo.train.checkpoint import (
    FORMAT,
    average_checkpoints,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_atomic,
)
from zoo.train.config import DEFAULT_WORKERS, RunConfig, parse_overrides, resolve_model_config, resolve_recipe
from zoo.train.data import build_dataset, evaluation_loader, start_epoch, training_loader
from zoo.train.distributed import (
    World,
    all_gather_objects,
    broadcast_module_state,
    init_world,
    shutdown_world,
    world_from_environment,
)
from zoo.train.interrupt import Interrupt
from zoo.train.logs import RunLog, log_to_file
from zoo.train.loop import EpochTotals, StepContext, evaluate_epoch, train_epoch
from zoo.train.optim import RecipeScheduler, build_optimizer, build_scheduler
from zoo.train.plugins import load_plugin
from zoo.train.recipe import Recipe
from zoo.train.registries import higher_is_better
from zoo.weights import load_weights

__all__ = [
    "RESUME_MAY_CHANGE",
    "RunResult",
    "check_output_space",
    "checkpoint_bytes",
    "describe_run",
    "resolve_device",
    "run",
    "seed_everything",
]

RESUME_MAY_CHANGE = (
    "epochs",
    "average_last",
    "description",
    "eval_batch_size",
    "init_checkpoint",
    "workers",
    "pin_memory",
    "persistent_workers",
    "prefetch_factor",
)
"""Recipe fields that may differ between a checkpoint and the run resuming it (the rest must be equal)."""

DATA_WAIT_WARNING = 0.3
"""Fraction of the training time spent waiting for data above which an epoch logs a warning..."""
DATA_WAIT_MIN_SECONDS = 10.0
"""...if its training pass took at least this long (a short pass is dominated by the workers' start-up)."""

log = logging.getLogger("zoo.train")


@dataclasses.dataclass
class RunResult:
    """What `run` returns (on every process; only rank 0 has written files).

    Attributes:
        out: run directory. recipe: the resolved recipe. model: the trained bare model (on its device).
        epochs_completed: epochs done in total, including those before a resume.
        history: one entry per epoch trained in this invocation: ``{"epoch", "lr", "seconds", "metrics":
            {split: {name: value}}, "firing_rates": {split: {layer: rate}}}``.
        best: ``{"metric", "value", "epoch"}`` of the best validation result (value None without validation).
        interrupted: name of the signal that stopped training early (``"SIGTERM"``), else None; ``last.pt`` then
            holds the state after the last step and ``--resume auto`` continues it.
        averaged_metrics: with `Recipe.average_last`, the metrics of the averaged weights (``averaged.pt``) on
            `Recipe.val_split` once the final epoch is done (``{}`` without a validation split), else None.
    """

    out: Path
    recipe: Recipe
    model: nn.Module
    epochs_completed: int
    history: list[dict[str, Any]]
    best: dict[str, Any]
    interrupted: str | None = None
    averaged_metrics: dict[str, float] | None = None

    @property
    def last_checkpoint(self) -> Path:
        return self.out / "last.pt"

    @property
    def best_checkpoint(self) -> Path:
        return self.out / "best.pt"

    @property
    def averaged_checkpoint(self) -> Path:
        """``averaged.pt``: written at the end of training when the recipe sets ``average_last``."""
        return self.out / "averaged.pt"


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str, world: World) -> torch.device:
    """``"auto"``/``"cpu"``/``"cuda"``/``"cuda:N"`` -> a device; under torchrun CUDA means ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ConfigError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    if world.distributed:
        device = torch.device("cuda", world.local_rank)
    elif device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    torch.cuda.set_device(device)
    return device


@contextlib.contextmanager
def _determinism(deterministic: bool) -> Iterator[None]:
    """Deterministic algorithms (and no cuDNN autotuning) on or off for the duration of a run, then restored."""
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous[1:]


def _resume_path(resume: str | Path | None, out: Path) -> Path | None:
    if resume is None:
        if (out / "last.pt").exists():
            raise ConfigError(
                f"run directory {str(out)!r} already holds last.pt from an earlier run; pass --resume auto to "
                "continue it, or choose another --out"
            )
        return None
    if str(resume) == "auto":
        return out / "last.pt" if (out / "last.pt").exists() else None
    return Path(resume)


def check_resumable(checkpoint: dict[str, Any], path: Path, recipe: Recipe, model_config: dict, seed: int) -> None:
    """`ConfigError` unless `checkpoint` was written by a run of the same model, config, recipe and seed.

    Recipe fields newer than the checkpoint count with their defaults.
    """
    saved = checkpoint["config"]
    if saved["model"] != recipe.model:
        raise ConfigError(
            f"cannot resume from {str(path)!r}: it holds model {saved['model']!r}, this run trains {recipe.model!r}"
        )
    changed = sorted(key for key in model_config if saved["model_config"].get(key) != model_config[key])
    if changed:
        details = ", ".join(f"{key}: {saved['model_config'].get(key)!r} -> {model_config[key]!r}" for key in changed)
        raise ConfigError(f"cannot resume from {str(path)!r}: model config differs ({details})")
    current = recipe.to_dict()
    saved_recipe = Recipe.from_dict(saved["recipe"]).to_dict()
    changed = sorted(key for key in current if key not in RESUME_MAY_CHANGE and saved_recipe[key] != current[key])
    if changed:
        details = ", ".join(f"{key}: {saved_recipe[key]!r} -> {current[key]!r}" for key in changed)
        raise ConfigError(f"cannot resume from {str(path)!r}: recipe differs ({details})")
    if saved["seed"] != seed:
        raise ConfigError(f"cannot resume from {str(path)!r}: it was trained with seed {saved['seed']}, not {seed}")


def _load_initial_weights(model: nn.Module, path: str) -> None:
    """`zoo.weights.load_weights` (strict: every key present, none extra, shapes equal) as a `ConfigError`."""
    try:
        load_weights(model, path)
    except (OSError, ValueError) as error:
        raise ConfigError(f"init_checkpoint {path!r}: {error}") from None


@dataclasses.dataclass
class _Training:
    """Everything built and checked before training starts."""

    recipe: Recipe
    model_config: dict[str, Any]
    overrides: dict[str, Any]
    world: World
    device: torch.device
    out: Path
    model: nn.Module
    loader: torch.utils.data.DataLoader
    sampler: torch.utils.data.DistributedSampler
    val_loader: torch.utils.data.DataLoader | None
    optimizer: torch.optim.Optimizer
    scheduler: RecipeScheduler
    scaler: torch.amp.GradScaler
    start_epoch: int
    best: dict[str, Any]
    rng_states: list[dict[str, Any]] | None
    workers: int
    within_epoch: dict[str, Any] | None


def describe_run(config: RunConfig) -> dict[str, Any]:
    """The resolved configuration of `config` without loading data or building the model (``--print-config``):
    ``{"recipe": {field: value}, "model": name, "model_config": {option: value}, "run": {setting: value}}``.

    Raises:
        ConfigError: as `run` would for the recipe, overrides and model options.
    """
    for plugin in config.plugins:
        load_plugin(plugin)
    recipe = resolve_recipe(config)
    settings = {field.name: getattr(config, field.name) for field in dataclasses.fields(config)}
    settings.update(recipe=recipe.name, overrides=parse_overrides(config.overrides), workers=_workers(config, recipe))
    return {
        "recipe": recipe.to_dict(),
        "model": recipe.model,
        "model_config": resolve_model_config(recipe),
        "run": settings,
    }


def _workers(config: RunConfig, recipe: Recipe) -> int:
    if config.workers is not None:
        return config.workers
    return recipe.workers if recipe.workers is not None else DEFAULT_WORKERS


def checkpoint_bytes(model: nn.Module) -> int:
    """Upper estimate of one checkpoint's size: the model's state and two optimiser tensors per parameter (Adam)."""
    state = sum(tensor.numel() * tensor.element_size() for tensor in model.state_dict().values())
    parameters = sum(parameter.numel() * parameter.element_size() for parameter in model.parameters())
    return state + 2 * parameters + (1 << 20)


def check_output_space(out: Path, needed: int) -> None:
    """Create `out` and prove it writable with a probe file, and check it has `needed` bytes free.

    Raises:
        ConfigError: the folder cannot be created or written (read-only, no permission, a file in the way, the
            disk full: the probe write fails), or holds less free space than `needed`.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-probe-{os.getpid()}"
        try:
            with probe.open("wb") as file:
                file.write(b"\0" * 4096)
                file.flush()
                os.fsync(file.fileno())
        finally:
            probe.unlink(missing_ok=True)
    except OSError as error:
        reason = "the disk is full" if error.errno == errno.ENOSPC else (error.strerror or str(error))
        raise ConfigError(f"run directory {str(out)!r} is not writable ({reason}); choose another --out") from None
    free = shutil.disk_usage(out).free
    if free < needed:
        raise ConfigError(
            f"run directory {str(out)!r} has {free / 1e6:.1f} MB free, checkpoints need about {needed / 1e6:.1f} MB "
            "(last.pt, best.pt, the kept epoch weights and averaged.pt if the recipe sets average_last, and the "
            "temporary file of an atomic write); free some space or choose another --out"
        )


def _prepare(config: RunConfig) -> _Training:
    for plugin in config.plugins:
        load_plugin(plugin)
    recipe = resolve_recipe(config)
    model_config = resolve_model_config(recipe)
    world = world_from_environment()
    device = resolve_device(config.device, world)
    root = Path(config.data)
    if not root.is_dir():
        raise ConfigError(
            f"dataset root {str(root)!r} does not exist or is not a directory (dataset {recipe.dataset!r})"
        )
    out = Path(config.out) if config.out is not None else Path("runs") / recipe.name
    resume_path = _resume_path(config.resume, out)
    checkpoint = load_checkpoint(resume_path) if resume_path is not None else None
    if checkpoint is not None:
        check_resumable(checkpoint, resume_path, recipe, model_config, config.seed)

    train_set = build_dataset(recipe, root, "train")
    val_set = build_dataset(recipe, root, recipe.val_split) if recipe.val_split is not None else None
    workers = _workers(config, recipe)
    pin_memory = recipe.pin_memory if recipe.pin_memory is not None else device.type == "cuda"
    loader, sampler = training_loader(train_set, recipe, world, config.seed, workers, pin_memory)
    val_loader = None
    if val_set is not None:
        batch = recipe.eval_batch_size or recipe.batch_size
        val_loader = evaluation_loader(
            val_set, batch, world, workers, pin_memory, recipe.persistent_workers, recipe.prefetch_factor
        )

    seed_everything(config.seed)
    model = zoo.build(recipe.model, **recipe.model_overrides)
    if checkpoint is None and recipe.init_checkpoint is not None:
        _load_initial_weights(model, recipe.init_checkpoint)
    model.to(device)
    optimizer = build_optimizer(model, recipe)
    scheduler = build_scheduler(optimizer, len(loader), recipe)
    use_scaler = recipe.amp and recipe.amp_dtype == "float16" and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    best = {"metric": recipe.selection_metric, "value": None, "epoch": None}
    start, rng_states, within_epoch = 0, None, None
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        if checkpoint["scaler"]:
            scaler.load_state_dict(checkpoint["scaler"])
        start, best, rng_states = checkpoint["epoch"], checkpoint["best"], checkpoint["rng"]
        within_epoch = checkpoint.get("within_epoch")
    return _Training(
        recipe=recipe,
        model_config=model_config,
        overrides=parse_overrides(config.overrides),
        world=world,
        device=device,
        out=out,
        model=model,
        loader=loader,
        sampler=sampler,
        val_loader=val_loader,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        start_epoch=start,
        best=best,
        rng_states=rng_states,
        workers=workers,
        within_epoch=within_epoch,
    )


def run(config: RunConfig) -> RunResult:
    """Train `config.recipe`; see `RunConfig` for the options and the module docstring for the order of work.

    The process-wide determinism flags (`torch.use_deterministic_algorithms`, cuDNN) are set for the run and
    restored afterwards; so are the SIGINT/SIGTERM handlers (installed while training, from the main thread).

    Raises:
        ConfigError: any bad configuration, before training starts (`DatasetError`: a dataset that cannot be
            built, or a batch that cannot be read during training).
        FloatingPointError: the training loss of an epoch is not finite (``last.pt`` keeps the previous epoch).
    """
    with _determinism(config.deterministic):
        return _run(config)


def _run(config: RunConfig) -> RunResult:
    training = _prepare(config)
    result = RunResult(
        out=training.out,
        recipe=training.recipe,
        model=training.model,
        epochs_completed=training.start_epoch,
        history=[],
        best=training.best,
    )
    if config.dry_run:
        return result
    if training.start_epoch >= training.recipe.epochs:
        if training.world.is_main:
            log.info("nothing to train: the checkpoint already completed %d epochs", training.start_epoch)
        return result
    if training.world.is_main:
        averaging = training.recipe.average_last + 1 if training.recipe.average_last else 0
        check_output_space(training.out, (3 + averaging) * checkpoint_bytes(training.model))
    init_world(training.world, training.device)
    try:
        _train(training, config, result)
    finally:
        shutdown_world(training.world)
    return result


def _train(training: _Training, config: RunConfig, result: RunResult) -> None:
    recipe, world, out = training.recipe, training.world, training.out
    model: nn.Module = training.model
    if world.distributed:
        device_ids = [training.device.index] if training.device.type == "cuda" else None
        model = DistributedDataParallel(
            training.model, device_ids=device_ids, find_unused_parameters=recipe.ddp_find_unused_parameters
        )
    file_log = log_to_file(log, out / "train.log") if world.is_main else contextlib.nullcontext()
    run_log = None
    with file_log, Interrupt(world, training.device, config.log_every) as interrupt:
        if world.is_main:
            _write_config_json(training, config)
            run_log = RunLog(out, training.start_epoch, config.tensorboard)
            _log_start(training, config)
        if training.rng_states is None:
            seed_everything(config.seed + world.rank)
        else:
            if len(training.rng_states) != world.size and world.is_main:
                log.warning(
                    "checkpoint was written by %d processes, resuming with %d: random streams are reused modulo, "
                    "the run is not an exact continuation",
                    len(training.rng_states),
                    world.size,
                )
            restore_rng_state(training.rng_states[world.rank % len(training.rng_states)])
        show_progress = config.progress if config.progress is not None else sys.stderr.isatty()
        context = StepContext(
            model=model,
            bare_model=training.model,
            recipe=recipe,
            device=training.device,
            world=world,
            show_progress=show_progress and world.is_main,
            log_every=config.log_every,
            total_steps=recipe.epochs * len(training.loader),
            interrupt=interrupt,
        )
        end = recipe.epochs
        if config.stop_after_epochs is not None:
            end = min(end, training.start_epoch + config.stop_after_epochs)
        try:
            for epoch in range(training.start_epoch, end):
                _run_epoch(training, context, epoch, config.seed, run_log, result)
                if result.interrupted is None and epoch + 1 < end and interrupt.requested():
                    result.interrupted = interrupt.received
                if result.interrupted is not None:
                    if world.is_main:
                        log.warning(
                            "%s: stopped after %d optimiser steps (%d complete epochs); %s holds that state; continue "
                            "with --resume auto",
                            result.interrupted,
                            training.scheduler.last_epoch,
                            result.epochs_completed,
                            out / "last.pt",
                        )
                    break
        finally:
            if run_log is not None:
                run_log.close()


def _log_start(training: _Training, config: RunConfig) -> None:
    recipe = training.recipe
    parameters = sum(parameter.numel() for parameter in training.model.parameters())
    resumed = ""
    if training.start_epoch or training.within_epoch:
        steps = training.within_epoch["totals"][0]["steps"] if training.within_epoch else 0
        resumed = f", resuming after epoch {training.start_epoch}" + (f" step {steps}" if steps else "")
    log.info(
        "recipe %s: model %s (%s parameters), dataset %s from %s, %d epochs of %d steps, device %s x %d, "
        "%d data workers, run directory %s%s",
        recipe.name,
        recipe.model,
        f"{parameters:,}",
        recipe.dataset,
        config.data,
        recipe.epochs,
        len(training.loader),
        training.device,
        training.world.size,
        training.workers,
        training.out,
        resumed,
    )


def _run_epoch(
    training: _Training,
    context: StepContext,
    epoch: int,
    seed: int,
    run_log: RunLog | None,
    result: RunResult,
) -> None:
    recipe, world = training.recipe, training.world
    started = time.perf_counter()
    start_epoch(training.loader, training.sampler, epoch, seed, world)
    description = f"epoch {epoch + 1}/{recipe.epochs}"
    totals, after_replay = EpochTotals(recipe.metrics, training.device, training=True), None
    if training.within_epoch is not None:
        saved_totals = training.within_epoch["totals"]
        totals.load_state_dict(saved_totals[world.rank % len(saved_totals)])
        states = training.rng_states
        after_replay = functools.partial(restore_rng_state, states[world.rank % len(states)])
        training.within_epoch = None
    train_totals = train_epoch(
        context,
        training.loader,
        training.optimizer,
        training.scheduler,
        training.scaler,
        f"{description} train",
        totals,
        after_replay,
    )
    global_step = training.scheduler.last_epoch
    if train_totals.stopped:
        result.interrupted = context.interrupt.received
        rng_states = all_gather_objects(capture_rng_state(), world)
        partial_totals = all_gather_objects(train_totals.state_dict(), world)
        if world.is_main:
            payload = _checkpoint(training, epoch, global_step, rng_states, {}, seed)
            payload["within_epoch"] = {"totals": partial_totals}
            save_atomic(payload, training.out / "last.pt")
        return
    totals = {"train": train_totals}
    if training.val_loader is not None:
        totals[recipe.val_split] = evaluate_epoch(
            context, training.val_loader, f"{description} {recipe.val_split}", recipe.val_split
        )
    metrics, firing = {}, {}
    for split, split_totals in totals.items():
        metrics[split], firing[split] = split_totals.reduce(world)
    data_wait = {split: split_totals.data_wait for split, split_totals in totals.items()}
    if not math.isfinite(metrics["train"]["loss"]):
        raise FloatingPointError(f"training diverged: epoch {epoch + 1} has train loss {metrics['train']['loss']}")
    lr = recipe.lr * training.scheduler.factor(global_step - 1)
    improved = False
    if training.val_loader is not None:
        value = metrics[recipe.val_split][recipe.selection_metric]
        improved = _is_better(value, training.best["value"], higher_is_better(recipe.selection_metric))
        if improved:
            training.best.update(value=value, epoch=epoch + 1)
        training.scheduler.end_epoch(value)
    rng_states = all_gather_objects(capture_rng_state(), world)
    seconds = time.perf_counter() - started
    if world.is_main:
        payload = _checkpoint(training, epoch + 1, global_step, rng_states, metrics, seed)
        if recipe.average_last:
            save_atomic(training.model.state_dict(), _epoch_weights_path(training.out, epoch + 1))
        save_atomic(payload, training.out / "last.pt")
        if improved:
            save_atomic(payload, training.out / "best.pt")
        if recipe.average_last:
            _delete_epoch_weights(training.out, before=epoch + 2 - recipe.average_last)
        run_log.write_epoch(epoch + 1, lr, seconds, metrics, firing, data_wait)
        log.info(_summary(epoch + 1, recipe.epochs, lr, seconds, metrics, improved, data_wait["train"]))
        if data_wait["train"] > DATA_WAIT_WARNING and train_totals.seconds >= DATA_WAIT_MIN_SECONDS:
            log.warning(
                "epoch %d: the training loop waited for data %.0f%% of the time; the data loader is the bottleneck "
                "(%d workers: raise --workers or the recipe's workers, check the dataset's cache options)",
                epoch + 1,
                100 * data_wait["train"],
                training.workers,
            )
    if recipe.average_last and epoch + 1 == recipe.epochs:
        result.averaged_metrics = _average_and_evaluate(training, context, epoch + 1, global_step, rng_states, seed)
    result.epochs_completed = epoch + 1
    result.history.append(
        {
            "epoch": epoch + 1,
            "lr": lr,
            "seconds": seconds,
            "metrics": metrics,
            "firing_rates": firing,
            "data_wait": data_wait,
        }
    )


_EPOCH_WEIGHTS = re.compile(r"epoch-(\d+)\.pt")
"""Names of the per-epoch weight files kept for `Recipe.average_last`."""


def _epoch_weights_path(out: Path, epoch: int) -> Path:
    """``<out>/epoch-<epoch>.pt``: the model's state dict after `epoch` (counted from 1) epochs."""
    return out / f"epoch-{epoch}.pt"


def _delete_epoch_weights(out: Path, before: int) -> None:
    """Delete the kept weights of the epochs before `before` (a resumed run's old files included)."""
    for path in out.iterdir():
        match = _EPOCH_WEIGHTS.fullmatch(path.name)
        if match is not None and int(match.group(1)) < before:
            path.unlink(missing_ok=True)


def _average_and_evaluate(
    training: _Training,
    context: StepContext,
    epoch: int,
    global_step: int,
    rng_states: list[dict[str, Any]],
    seed: int,
) -> dict[str, float]:
    """After the final epoch: average the kept epoch weights, evaluate the mean on `Recipe.val_split` and write
    ``averaged.pt`` with those metrics; returns them (``{}`` without a validation split).

    Rank 0 reads the ``epoch-<k>.pt`` files of the last `average_last` epochs that are present (after a run
    shorter than `average_last` epochs, or with files missing, fewer; a warning names them) and sends the mean to
    every process, so that the evaluation is sharded as each epoch's is. The final epoch's weights are restored
    afterwards: the run's model stays the trained one.
    """
    recipe, world, out = training.recipe, training.world, training.out
    final = {key: value.detach().clone() for key, value in training.model.state_dict().items()}
    epochs: list[int] = []
    if world.is_main:
        first = max(1, recipe.epochs - recipe.average_last + 1)
        epochs = [k for k in range(first, recipe.epochs + 1) if _epoch_weights_path(out, k).is_file()]
        if len(epochs) < recipe.average_last:
            log.warning(
                "averaged.pt: average_last=%d but only the weights of epochs %s are present; averaging those",
                recipe.average_last,
                epochs,
            )
        states = [torch.load(_epoch_weights_path(out, k), map_location="cpu", weights_only=True) for k in epochs]
        training.model.load_state_dict(average_checkpoints(states))
    broadcast_module_state(training.model, world)
    metrics: dict[str, float] = {}
    if training.val_loader is not None:
        split = recipe.val_split
        totals = evaluate_epoch(context, training.val_loader, f"averaged weights {split}", split)
        metrics = totals.reduce(world)[0]
    if world.is_main:
        payload = _checkpoint(
            training, epoch, global_step, rng_states, {recipe.val_split: metrics} if metrics else {}, seed
        )
        payload["averaged"] = {"epochs": epochs}
        save_atomic(payload, out / "averaged.pt")
        scores = " ".join(f"{name} {value:.4f}" for name, value in metrics.items())
        log.info(
            "averaged.pt: mean of the weights after epochs %s%s",
            epochs,
            f"; {recipe.val_split} {scores}" if metrics else "",
        )
    training.model.load_state_dict(final)
    return metrics


def _is_better(value: float, best: float | None, higher: bool) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value > best if higher else value < best


def _checkpoint(
    training: _Training,
    epoch: int,
    global_step: int,
    rng_states: list[dict[str, Any]],
    metrics: dict[str, dict[str, float]],
    seed: int,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "model": training.model.state_dict(),
        "optimizer": training.optimizer.state_dict(),
        "scheduler": training.scheduler.state_dict(),
        "scaler": training.scaler.state_dict(),
        "rng": rng_states,
        "epoch": epoch,
        "global_step": global_step,
        "config": {
            "recipe": training.recipe.to_dict(),
            "overrides": training.overrides,
            "model": training.recipe.model,
            "model_config": training.model_config,
            "seed": seed,
            "world_size": training.world.size,
        },
        "best": dict(training.best),
        "metrics": metrics,
    }


def _write_config_json(training: _Training, config: RunConfig) -> None:
    described = {
        "recipe": training.recipe.to_dict(),
        "model": training.recipe.model,
        "model_config": training.model_config,
        "overrides": training.overrides,
        "data": str(config.data),
        "seed": config.seed,
        "deterministic": config.deterministic,
        "device": str(training.device),
        "world_size": training.world.size,
        "resumed_from_epoch": training.start_epoch,
        "versions": {"jellyzoo": zoo.__version__, "torch": torch.__version__},
    }
    text = json.dumps(described, indent=2, default=repr)
    (training.out / "config.json").write_text(text + "\n", encoding="utf-8")


def _summary(
    epoch: int, epochs: int, lr: float, seconds: float, metrics: dict, improved: bool, data_wait: float
) -> str:
    parts = [f"epoch {epoch}/{epochs}", f"lr {lr:.3g}"]
    for split, values in metrics.items():
        parts.append(f"{split} " + " ".join(f"{name} {value:.4f}" for name, value in values.items()))
    parts.append(f"data wait {100 * data_wait:.0f}%")
    parts.append(f"{seconds:.1f}s" + (" (best)" if improved else ""))
    return "  ".join(parts)
