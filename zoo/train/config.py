"""`RunConfig` (what one training run is asked to do) and its resolution into a checked `Recipe`.

Overrides (CLI ``key=value`` words, or a mapping from Python) are applied on top of the recipe, after
``--model`` and ``--epochs``:

- ``field=value``: a `Recipe` field, e.g. ``lr=3e-4``, ``schedule=cosine``, ``metrics=accuracy,top5``
- ``model.<option>=value``: a model builder option (merged into ``model_overrides``)
- ``data.<option>=value``: a dataset option for every split (merged into ``dataset_options``)
- ``train_data.<option>=value``: a dataset option for the training split only (``train_options``)
- ``loss.<option>=value`` / ``optim.<option>=value``: merged into ``loss_options`` / ``optimizer_options``
- ``after_step.<hook>=options``: a step hook and its options dict, merged into ``after_step``
  (``after_step.ema={'momentum': 0.996}``)

Values are parsed with `ast.literal_eval` (numbers, tuples, lists, dicts, True/False/None) and kept as the plain
string when that fails (``schedule=cosine``).
"""

from __future__ import annotations

import ast
import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import zoo
from zoo.errors import ConfigError
from zoo.registry import resolve_config
from zoo.train.optim import OPTIMIZERS, SCHEDULE_UNITS, SCHEDULES
from zoo.train.recipe import Recipe, get_recipe, list_recipes, replace_fields
from zoo.train.registries import checked_options, get_loss, get_metric, get_step_hook

__all__ = [
    "OVERRIDE_GROUPS",
    "RunConfig",
    "apply_overrides",
    "parse_overrides",
    "resolve_model_config",
    "resolve_recipe",
]

OVERRIDE_GROUPS = {
    "model": "model_overrides",
    "data": "dataset_options",
    "train_data": "train_options",
    "loss": "loss_options",
    "optim": "optimizer_options",
    "after_step": "after_step",
}
SPLITS = ("train", "val", "test")
DEFAULT_WORKERS = min(4, os.cpu_count() or 1)
AMP_DTYPES = ("bfloat16", "float16")


@dataclasses.dataclass
class RunConfig:
    """One training run.

    Attributes:
        recipe: registered recipe name or a `Recipe`.
        data: dataset root directory.
        model: registered model replacing the recipe's (the recipe's `model_overrides` still apply).
        overrides: ``["key=value", ...]`` words or a ``{key: value}`` mapping (see the module docstring).
        out: run directory for checkpoints (``last.pt``, ``best.pt``), ``metrics.csv``, ``firing_rates.csv``,
            ``tensorboard/`` and ``config.json``; default ``runs/<recipe name>``.
        resume: ``"auto"`` (continue from ``<out>/last.pt`` if it exists, else start fresh) or a checkpoint path.
        seed: seeds model initialisation, shuffling and augmentation.
        deterministic: deterministic algorithms only (`torch.use_deterministic_algorithms`, no cuDNN autotuning).
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"`` (under torchrun: ``cuda:LOCAL_RANK``).
        workers: data-loader worker processes per training process (default: the recipe's `workers`, else
            min(4, CPU cores)).
        epochs: shortcut for the ``epochs`` override.
        stop_after_epochs: end this invocation once that many epochs are complete, keeping the schedule of the
            full run (for time-limited jobs; continue with `resume`).
        plugins: modules or ``.py`` files imported first, to register recipes, models, datasets, ...
        progress: show tqdm bars (default: only on rank 0 when stderr is a terminal).
        log_every: batches between progress-bar loss updates (each update reads one number from the device).
        tensorboard: write TensorBoard event files.
        dry_run: check everything (datasets and model built, checkpoint compatible) and stop before training.
    """

    recipe: str | Recipe
    data: str | Path
    model: str | None = None
    overrides: Sequence[str] | Mapping[str, Any] = ()
    out: str | Path | None = None
    resume: str | Path | None = None
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    workers: int | None = None
    epochs: int | None = None
    stop_after_epochs: int | None = None
    plugins: Sequence[str] = ()
    progress: bool | None = None
    log_every: int = 50
    tensorboard: bool = True
    dry_run: bool = False


def parse_overrides(words: Sequence[str] | Mapping[str, Any]) -> dict[str, Any]:
    """``["lr=0.1", "model.num_classes=10"]`` -> ``{"lr": 0.1, "model.num_classes": 10}`` (mappings pass through)."""
    if isinstance(words, Mapping):
        return dict(words)
    if isinstance(words, str):
        raise ConfigError(f"overrides must be a list of 'key=value' words, got the string {words!r}")
    parsed = {}
    for word in words:
        key, separator, text = word.partition("=")
        if not separator or not key.strip():
            raise ConfigError(f"override {word!r} is not of the form key=value (e.g. lr=0.001 or model.option=3)")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        parsed[key.strip()] = value
    return parsed


def apply_overrides(recipe: Recipe, overrides: Mapping[str, Any]) -> Recipe:
    """`recipe` with `overrides` (parsed keys, see the module docstring) applied and type-checked."""
    fields: dict[str, Any] = {}
    grouped: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        group, dot, option = key.partition(".")
        if dot:
            if group not in OVERRIDE_GROUPS or not option:
                raise ConfigError(
                    f"override {key!r}: unknown prefix {group + '.'!r}; prefixes: "
                    f"{', '.join(prefix + '.' for prefix in OVERRIDE_GROUPS)}"
                )
            grouped.setdefault(OVERRIDE_GROUPS[group], {})[option] = value
        else:
            fields[key] = value
    recipe = replace_fields(recipe, fields)
    merged = {field: {**getattr(recipe, field), **options} for field, options in grouped.items()}
    return replace_fields(recipe, merged)


def resolve_recipe(config: RunConfig) -> Recipe:
    """The recipe of `config` with ``--model``, ``--epochs`` and the overrides applied, then checked; the loss and
    step-hook options converted to their declared types."""
    recipe = config.recipe if isinstance(config.recipe, Recipe) else get_recipe(config.recipe)
    if config.model is not None and config.model != recipe.model:
        check_model_fits(recipe, config.model)
        recipe = replace_fields(recipe, {"model": config.model})
    if config.epochs is not None:
        recipe = replace_fields(recipe, {"epochs": config.epochs})
    recipe = apply_overrides(recipe, parse_overrides(config.overrides))
    check_recipe(recipe)
    return replace_fields(
        recipe,
        {
            "loss_options": checked_options(get_loss(recipe.loss), "", 3, recipe.loss_options),
            "after_step": {
                name: checked_options(get_step_hook(name), "", 3, options)
                for name, options in recipe.after_step.items()
            },
        },
    )


def check_model_fits(recipe: Recipe, model: str) -> None:
    """`ConfigError` if `model` (``--model``) does not take the model options the recipe itself sets.

    A recipe's `model_overrides` are its preset for its own model family (e.g. sparch's ``dataset="shd"``); the
    message says so and names the recipes whose model is of `model`'s family. An unknown `model` is left to
    `resolve_model_config`, which names the closest registered models.
    """
    if model not in zoo.list_models():
        return
    try:
        resolve_config(model, **recipe.model_overrides)
    except (KeyError, TypeError) as error:
        family = zoo.model_info(model).family
        fitting = [
            name
            for name in list_recipes()
            if get_recipe(name).model in zoo.list_models() and zoo.model_info(get_recipe(name).model).family == family
        ]
        preset = ", ".join(f"{key}={value!r}" for key, value in recipe.model_overrides.items())
        hint = f"recipes for the {family} family: {', '.join(fitting)}" if fitting else "no recipe trains that family"
        raise ConfigError(
            f"model {model!r} does not fit recipe {recipe.name!r}: the recipe's preset for {recipe.model!r} sets "
            f"model options {preset}, and {model} rejects them ({error.args[0] if error.args else error}); choose a "
            f"model of the {zoo.model_info(recipe.model).family} family or another recipe ({hint})"
        ) from None


def resolve_model_config(recipe: Recipe) -> dict[str, Any]:
    """The full builder config of the recipe's model (`ConfigError` for an unknown model or option)."""
    try:
        return resolve_config(recipe.model, **recipe.model_overrides)
    except (KeyError, TypeError) as error:
        raise ConfigError(error.args[0] if error.args else str(error)) from None


def check_recipe(recipe: Recipe) -> None:
    """Raise `ConfigError` naming the first field of `recipe` that cannot work."""
    _choice(recipe, "optimizer", tuple(OPTIMIZERS))
    _choice(recipe, "schedule", SCHEDULES)
    _choice(recipe, "schedule_unit", SCHEDULE_UNITS)
    _choice(recipe, "amp_dtype", AMP_DTYPES)
    _choice(recipe, "val_split", (*SPLITS, None))
    _positive(recipe, "epochs", "batch_size", "lr")
    if recipe.eval_batch_size is not None:
        _positive(recipe, "eval_batch_size")
    if recipe.grad_clip is not None:
        _positive(recipe, "grad_clip")
    if recipe.weight_decay < 0 or recipe.min_lr < 0 or recipe.min_lr > recipe.lr:
        raise ConfigError(
            f"recipe {recipe.name!r}: need weight_decay >= 0 and 0 <= min_lr <= lr, got weight_decay="
            f"{recipe.weight_decay}, min_lr={recipe.min_lr}, lr={recipe.lr}"
        )
    if not 0 <= recipe.warmup_epochs < recipe.epochs:
        raise ConfigError(
            f"recipe {recipe.name!r}: warmup_epochs must be in [0, epochs={recipe.epochs}), got {recipe.warmup_epochs}"
        )
    if recipe.schedule == "plateau":
        _check_plateau(recipe)
    if not recipe.layer_decay > 0:
        raise ConfigError(f"recipe {recipe.name!r}: layer_decay must be positive, got {recipe.layer_decay}")
    if recipe.average_last < 0:
        raise ConfigError(f"recipe {recipe.name!r}: average_last must be >= 0 (0: off), got {recipe.average_last}")
    for field in ("workers", "prefetch_factor"):
        value = getattr(recipe, field)
        if value is not None and (value < 0 or (field == "prefetch_factor" and value == 0)):
            raise ConfigError(
                f"recipe {recipe.name!r}: {field} must be {'>= 0' if field == 'workers' else '> 0'}, got {value}"
            )
    for name, options in recipe.after_step.items():
        checked_options(get_step_hook(name), f"step hook {name!r}", 3, options)
    checked_options(get_loss(recipe.loss), f"loss {recipe.loss!r}", 3, recipe.loss_options)
    for metric in recipe.metrics:
        get_metric(metric)
    if recipe.selection_metric not in ("loss", *recipe.metrics):
        raise ConfigError(
            f"recipe {recipe.name!r}: selection_metric {recipe.selection_metric!r} must be 'loss' or one of the "
            f"metrics {recipe.metrics}"
        )
    if recipe.init_checkpoint is not None and not Path(recipe.init_checkpoint).is_file():
        raise ConfigError(f"recipe {recipe.name!r}: init_checkpoint {recipe.init_checkpoint!r} does not exist")


def _check_plateau(recipe: Recipe) -> None:
    if recipe.val_split is None:
        raise ConfigError(
            f"recipe {recipe.name!r}: schedule 'plateau' follows the validation {recipe.selection_metric!r}, but "
            "val_split is None; set val_split or choose another schedule"
        )
    if not 0 < recipe.plateau_factor < 1 or recipe.plateau_patience < 0 or recipe.plateau_threshold < 0:
        raise ConfigError(
            f"recipe {recipe.name!r}: need 0 < plateau_factor < 1, plateau_patience >= 0 and plateau_threshold >= 0, "
            f"got {recipe.plateau_factor}, {recipe.plateau_patience}, {recipe.plateau_threshold}"
        )


def _choice(recipe: Recipe, field: str, choices: tuple) -> None:
    value = getattr(recipe, field)
    if value not in choices:
        raise ConfigError(f"recipe {recipe.name!r}: {field} must be one of {choices}, got {value!r}")


def _positive(recipe: Recipe, *fields: str) -> None:
    for field in fields:
        if not getattr(recipe, field) > 0:
            raise ConfigError(f"recipe {recipe.name!r}: {field} must be positive, got {getattr(recipe, field)!r}")
