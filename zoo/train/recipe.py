"""The `Recipe` dataclass (everything needed to reproduce one paper's training) and the recipe registry.

A recipe is data: families build one `Recipe` per paper setting and `register_recipe` it from
`zoo/train/recipes/<family>.py`. The CLI and `zoo.train.run` look recipes up by name and apply overrides.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import types
import typing
from typing import Any

from zoo.registry import type_name
from zoo.train.errors import ConfigError

__all__ = ["Recipe", "get_recipe", "list_recipes", "register_recipe", "replace_fields"]


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
        epochs, batch_size: global batch size (split evenly over DDP processes; must divide by their number).
        drop_last: drop the last incomplete training batch.
        grad_clip: max global L2 norm of the gradients (``None``: no clipping).
        amp: autocast on CUDA with `amp_dtype` (``"bfloat16"``; ``"float16"`` also enables a GradScaler).
            Ignored on CPU.

    Loss and metrics:
        loss: registered loss name, called as ``loss(output, target, model, **loss_options)``.
        metrics: registered metric names reported per epoch for train and validation (``"loss"`` is always
            reported). selection_metric: ``"loss"`` or one of `metrics`; its registered direction says whether
            higher or lower is better.

    Other:
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
    amp: bool = True
    amp_dtype: str = "bfloat16"
    loss: str = "cross_entropy"
    loss_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    metrics: tuple[str, ...] = ("accuracy",)
    selection_metric: str = "accuracy"
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


_RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    """Add `recipe` to the registry under `recipe.name` (a name can be registered once)."""
    if not isinstance(recipe, Recipe):
        raise TypeError(f"register_recipe expects a Recipe, got {type(recipe).__name__}")
    if recipe.name in _RECIPES:
        raise ValueError(f"recipe {recipe.name!r} is already registered")
    _RECIPES[recipe.name] = recipe
    return recipe


def _load_family_recipes() -> None:
    import zoo.train.recipes  # noqa: F401  (imported for its registration side effect)


def list_recipes(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered recipes, optionally filtered by an fnmatch pattern."""
    _load_family_recipes()
    names = sorted(_RECIPES)
    return names if pattern is None else [name for name in names if fnmatch.fnmatchcase(name, pattern)]


def get_recipe(name: str) -> Recipe:
    """The registered recipe `name`; an unknown name raises `ConfigError` listing the closest names."""
    _load_family_recipes()
    if name not in _RECIPES:
        close = difflib.get_close_matches(name, list(_RECIPES), n=5, cutoff=0.4)
        hint = f"closest: {', '.join(close)}" if close else f"available: {', '.join(sorted(_RECIPES)) or '(none)'}"
        raise ConfigError(f"unknown recipe {name!r}; {hint}")
    return _RECIPES[name]


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(Recipe)


def replace_fields(recipe: Recipe, values: dict[str, Any]) -> Recipe:
    """`recipe` with the fields in `values` replaced, after checking names and types.

    Values are coerced where the intent is unambiguous: int -> float for float fields, list -> tuple for tuple
    fields, and a comma-separated string -> tuple of strings for ``tuple[str, ...]`` fields.
    """
    types_by_field = _field_types()
    checked = {}
    for key, value in values.items():
        if key not in types_by_field:
            close = difflib.get_close_matches(key, list(types_by_field), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"unknown recipe field {key!r}{hint}; fields: {', '.join(types_by_field)}")
        checked[key] = _coerce(key, value, types_by_field[key])
    return dataclasses.replace(recipe, **checked)


def _coerce(key: str, value: Any, expected: Any) -> Any:
    options = typing.get_args(expected) if typing.get_origin(expected) in (typing.Union, types.UnionType) else ()
    candidates = options or (expected,)
    for candidate in candidates:
        converted = _convert(value, candidate)
        if converted is not _MISMATCH:
            return converted
    raise ConfigError(f"recipe field {key!r} expects {type_name(expected)}, got {type(value).__name__} {value!r}")


_MISMATCH = object()


def _convert(value: Any, expected: Any) -> Any:
    origin = typing.get_origin(expected)
    if expected is type(None):
        return value if value is None else _MISMATCH
    if expected is bool:
        return value if isinstance(value, bool) else _MISMATCH
    if expected is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _MISMATCH
    if expected is float:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else _MISMATCH
    if expected is str:
        return value if isinstance(value, str) else _MISMATCH
    if origin is tuple:
        item_type = typing.get_args(expected)[0]
        if isinstance(value, str) and item_type is str:
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        if not isinstance(value, (tuple, list)):
            return _MISMATCH
        items = tuple(_convert(item, item_type) for item in value)
        return _MISMATCH if any(item is _MISMATCH for item in items) else items
    if origin is dict:
        return dict(value) if isinstance(value, dict) else _MISMATCH
    return value if isinstance(value, expected) else _MISMATCH
