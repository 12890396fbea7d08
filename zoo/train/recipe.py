"""The `Recipe` dataclass (everything needed to reproduce one paper's training) and the recipe registry.

A recipe is data: families build one `Recipe` per paper setting and `register_recipe` it from
`zoo/train/recipes/<family>.py`. The CLI and `zoo.train.run` look recipes up by name and apply overrides.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from zoo.errors import ConfigError
from zoo.names import NameTable
from zoo.options import check_options

__all__ = ["RESERVED_NAMES", "Recipe", "get_recipe", "list_recipes", "register_recipe", "replace_fields"]


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One training setting: model, data, optimisation, schedule, loss, metrics.

    Model and data:
        name: registry key, e.g. ``"spikgru2plus-dvs-lip"``.
        model: registered model name (`zoo.list_models()`); `model_overrides` are its builder options.
        dataset: registered dataset name (`register_dataset`); `dataset_options` go to every split,
            `train_options` (e.g. augmentations) are added for the ``"train"`` split only.
        val_split: split evaluated after every epoch and used for best-checkpoint selection (``"val"``; ``"test"``
            reproduces papers that select on the test set; ``None`` skips validation and keeps no best checkpoint).
        init_checkpoint: optional path to weights loaded (strictly) before training: a jellyzoo checkpoint or a
            plain state dict of the model.

    Optimisation:
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"``; `optimizer_options` are extra constructor arguments
            (e.g. ``{"momentum": 0.9, "nesterov": True}`` or ``{"betas": (0.9, 0.999)}``).
        lr: peak learning rate (after warm-up). weight_decay: applied to every trainable parameter whose name
            contains none of the substrings in `no_weight_decay` (those get 0).
        schedule: ``"constant"``, ``"cosine"`` (to `min_lr`), ``"step"`` (times `step_gamma` at each epoch in
            `step_milestones`) or ``"plateau"`` (``ReduceLROnPlateau`` on `selection_metric` of `val_split`, which
            must not be None: times `plateau_factor` after more than `plateau_patience` epochs in a row without an
            improvement by the relative `plateau_threshold`, never below `min_lr`; defaults are PyTorch's 0.1, 10,
            1e-4); `schedule_unit` ``"iteration"`` updates the decay every step, ``"epoch"`` holds it constant
            within an epoch (like a per-epoch `torch.optim.lr_scheduler`). warmup_epochs: linear warm-up per
            iteration (may be fractional; the plateau multiplier applies on top). See `zoo.train.optim` for the
            exact formulas.
        param_groups: per-parameter settings, each ``{"params": PATTERN or (PATTERN, ...), **settings}`` with fnmatch
            patterns of parameter names (``model.named_parameters()``); a parameter takes the settings of the first
            entry that matches it. Settings: ``lr_scale`` (multiplies the lr and its schedule), ``weight_decay``
            (instead of the recipe's, `no_weight_decay` included) and any keyword of the optimiser (e.g.
            ``betas``). Example: ``({"params": "frontend.*", "lr_scale": 0.1}, {"params": "*.bias",
            "weight_decay": 0.0})``. Every pattern must match a trainable parameter.
        layers, layer_decay: layer-wise learning-rate decay. `layers` are fnmatch patterns of parameter names from
            the input to the output; ``{i}`` in a pattern matches a block number and gives each number its own
            layer (``("embed.*", "blocks.{i}.*")``). A parameter in layer r of R (parameters matching no pattern,
            e.g. the head, are layer R) gets ``lr_scale = layer_decay ** (R - r)`` (times its `param_groups`
            scale); see `zoo.train.optim.layer_lr_scales`. ``layer_decay=1`` switches it off.
        epochs, batch_size: global batch size (split evenly over DDP processes; must divide by their number).
        drop_last: drop the last incomplete training batch.
        grad_clip: max global L2 norm of the gradients (``None``: no clipping).
        amp: autocast on CUDA with `amp_dtype` (``"bfloat16"``; ``"float16"`` also enables a GradScaler).
            Ignored on CPU.

        after_step: step hooks run after every optimiser step, ``{registered name: options}`` in order (see
            `zoo.train.hooks`): the default ``{"clamp_parameters": {}}`` applies the model's own parameter
            constraints; e.g. ``after_step.ema={'momentum': 0.996}`` adds an EMA teacher update.

    Data loading (per process; fields of the recipe because the right values depend on the dataset):
        workers: data-loader worker processes (``None``: the command line's ``--workers``, default min(4, cores)).
        pin_memory: page-locked host batches for faster copies to the GPU (``None``: on when training on CUDA).
        persistent_workers: keep the worker processes between epochs (saves their start-up each epoch; then random
            augmentations in the workers continue their streams across epochs instead of restarting from the
            epoch's seed, so only a run resumed with the same setting and at an epoch boundary repeats them).
        prefetch_factor: batches loaded ahead by each worker (``None``: PyTorch's default, 2).

    Loss and metrics:
        loss: registered loss name, called as ``loss(output, target, model, **loss_options)``.
        metrics: registered metric names reported per epoch for train and validation (``"loss"`` is always
            reported). selection_metric: ``"loss"`` or one of `metrics`; its registered direction says whether
            higher or lower is better.

    Other:
        average_last: if > 0, the weights after each of the last `average_last` epochs are kept
            (``epoch-<k>.pt``, plain state dicts; older ones are deleted) and the end of training writes
            ``averaged.pt``, a checkpoint holding their element-wise mean (`zoo.train.checkpoint.average_checkpoints`)
            and that mean's metrics on `val_split`, e.g. RAVEn's final model, the average of the last 10 epochs.
            0: off.
        eval_batch_size: batch size for validation/evaluation (``None``: `batch_size`).
        ddp_find_unused_parameters: passed to `DistributedDataParallel` (needed when some parameters get no
            gradient in a step).
        description: one line shown by ``--help`` (paper and setting).
    """

    name: str
    model: str
    dataset: str
    model_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    dataset_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    train_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    val_split: str | None = "val"
    init_checkpoint: str | None = None
    optimizer: str = "adam"
    optimizer_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    lr: float = 1e-3
    weight_decay: float = 0.0
    no_weight_decay: tuple[str, ...] = ()
    schedule: str = "constant"
    schedule_unit: str = "iteration"
    warmup_epochs: float = 0.0
    min_lr: float = 0.0
    step_milestones: tuple[float, ...] = ()
    step_gamma: float = 0.1
    plateau_factor: float = 0.1
    plateau_patience: int = 10
    plateau_threshold: float = 1e-4
    epochs: int = 1
    batch_size: int = 32
    drop_last: bool = False
    grad_clip: float | None = None
    param_groups: tuple[dict[str, Any], ...] = ()
    layers: tuple[str, ...] = ()
    layer_decay: float = 1.0
    after_step: dict[str, dict[str, Any]] = dataclasses.field(default_factory=lambda: {"clamp_parameters": {}})
    workers: int | None = None
    pin_memory: bool | None = None
    persistent_workers: bool = False
    prefetch_factor: int | None = None
    amp: bool = True
    amp_dtype: str = "bfloat16"
    loss: str = "cross_entropy"
    loss_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    metrics: tuple[str, ...] = ("accuracy",)
    selection_metric: str = "accuracy"
    average_last: int = 0
    eval_batch_size: int | None = None
    ddp_find_unused_parameters: bool = False
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A plain-data copy (dicts, tuples, numbers, strings) for checkpoints and JSON."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Recipe:
        """Inverse of `to_dict`; unknown keys are an error."""
        return replace_fields(cls(name=values["name"], model=values["model"], dataset=values["dataset"]), values)


RESERVED_NAMES = ("show",)
"""Words of the ``python -m zoo.train`` command line that cannot be recipe names."""

_RECIPES: NameTable[Recipe] = NameTable("recipe")


def register_recipe(recipe: Recipe) -> Recipe:
    """Add `recipe` to the registry under `recipe.name` (`ConfigError` if the name is taken or reserved)."""
    if not isinstance(recipe, Recipe):
        raise TypeError(f"register_recipe expects a Recipe, got {type(recipe).__name__}")
    if recipe.name in RESERVED_NAMES:
        raise ConfigError(f"{recipe.name!r} is a command of python -m zoo.train and cannot name a recipe")
    return _RECIPES.add(recipe.name, recipe)


def list_recipes(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered recipes, optionally filtered by an fnmatch pattern."""
    return _RECIPES.names(pattern)


def get_recipe(name: str) -> Recipe:
    """The registered recipe `name`; an unknown name raises `ConfigError` listing the closest names."""
    return _RECIPES.get(name)


def replace_fields(recipe: Recipe, values: dict[str, Any]) -> Recipe:
    """`recipe` with the fields in `values` replaced, after checking names and types (`zoo.options`).

    Typed values convert only where the intent is unambiguous (int -> float, list <-> tuple); strings are parsed
    with the field's type hint as on the command line (``metrics="accuracy,top5"`` -> ``("accuracy", "top5")``).
    """
    try:
        checked = check_options(values, typing.get_type_hints(Recipe), kind="recipe field", parse=True)
    except TypeError as error:
        raise ConfigError(str(error)) from None
    return dataclasses.replace(recipe, **checked)
