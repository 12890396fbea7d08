"""Optimiser parameter groups (weight decay, per-pattern settings, layer-wise lr decay) and the learning-rate
schedule stepped every iteration.

Every parameter group starts at ``recipe.lr * lr_scale`` and follows the same schedule factor below (the factor
multiplies each group's own starting lr), so ``lr_scale`` ratios hold for the whole run.

Schedule (``lr(s) = recipe.lr * lr_factor(s)`` for optimiser step s = 0, 1, ...; S = steps per epoch):

- warm-up: ``W = round(warmup_epochs * S)`` steps; for ``s < W`` the factor is ``(s + 1) / W`` (linear, the
  first step already uses ``lr / W``, step W - 1 uses the full lr).
- afterwards the decay reads the elapsed epochs ``e = s / S`` (``schedule_unit="iteration"``) or ``floor(s / S)``
  (``schedule_unit="epoch"``, constant within an epoch like a per-epoch PyTorch scheduler), and the decay
  progress ``p = clamp((e - warmup_epochs) / (epochs - warmup_epochs), 0, 1)``:
  ``constant``: 1; ``cosine``: ``r + (1 - r) * (1 + cos(pi * p)) / 2`` with ``r = min_lr / lr``;
  ``step``: ``step_gamma ** (number of step_milestones <= e)`` (milestones in epochs from the start of training);
  ``plateau``: 1 (after warm-up), times the plateau multiplier below.

``plateau`` reproduces ``torch.optim.lr_scheduler.ReduceLROnPlateau`` (relative threshold, cooldown 0) as a
multiplier ``m`` of the whole factor (warm-up included), so the lr is still set every iteration by one
`LambdaLR`: at the end of every epoch `RecipeScheduler.end_epoch` receives the selection metric on the validation
split. A value better than ``best * (1 + plateau_threshold)`` (higher is better) or ``best * (1 - plateau_threshold)``
(lower is better) becomes the new best; any other value (NaN included) is a bad epoch. After more than
``plateau_patience`` bad epochs in a row, ``m`` becomes ``max(m * plateau_factor, min_lr / lr)`` (unless that lowers
the lr by at most 1e-8, PyTorch's ``eps``) and the count restarts. The new lr applies from the next step on.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from zoo.errors import ConfigError
from zoo.train.recipe import Recipe
from zoo.train.registries import higher_is_better

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "Plateau",
    "RecipeScheduler",
    "build_optimizer",
    "build_scheduler",
    "layer_lr_scales",
    "layer_ranks",
    "lr_factor",
    "parameter_groups",
]

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
SCHEDULES = ("constant", "cosine", "step", "plateau")
PLATEAU_EPS = 1e-8
"""Smallest lr reduction the plateau rule applies (``ReduceLROnPlateau``'s ``eps``)."""
SCHEDULE_UNITS = ("iteration", "epoch")


_BLOCK = "{i}"


def _name_regex(pattern: str) -> re.Pattern[str]:
    """fnmatch `pattern` (``*``, ``?``) as a regex; ``{i}`` becomes a captured block number (``\\d+``)."""
    parts = []
    for index, piece in enumerate(pattern.split(_BLOCK)):
        if index:
            parts.append(r"(\d+)")
        parts.append(re.escape(piece).replace(r"\*", ".*").replace(r"\?", "."))
    return re.compile("".join(parts))


def layer_ranks(names: Sequence[str], layers: Sequence[str]) -> tuple[dict[str, int], int]:
    """Layer index of every parameter name and the number of layers R (see `layer_lr_scales`).

    Layers are numbered from the input: each pattern of `layers` in order is one layer, or, with ``{i}``, one
    layer per block number matched (in numeric order). A name belongs to the first pattern that matches it;
    names that match none (e.g. the head) get index R, the last layer.

    Raises:
        ConfigError: a pattern that matches no name (a typo would otherwise silently train at full lr).
    """
    claimed: dict[str, tuple[int, int]] = {}
    for position, pattern in enumerate(layers):
        regex, matched = _name_regex(pattern), False
        for name in names:
            found = regex.fullmatch(name)
            if found is None:
                continue
            matched = True
            if name not in claimed:
                claimed[name] = (position, int(found.group(1)) if found.groups() else 0)
        if not matched:
            raise ConfigError(f"layers pattern {pattern!r} matches no trainable parameter")
    order = sorted(set(claimed.values()))
    index = {key: rank for rank, key in enumerate(order)}
    count = len(order)
    return {name: index[claimed[name]] if name in claimed else count for name in names}, count


def layer_lr_scales(names: Sequence[str], layers: Sequence[str], decay: float) -> dict[str, float]:
    """Layer-wise lr decay (as in BEiT / MAE fine-tuning): ``decay ** (R - r)`` for a parameter of layer r.

    With ``layers=("embed.*", "blocks.{i}.*")`` and blocks 0..11: embed has r = 0, block k has r = k + 1, the rest
    (the head) r = R = 13; so the head trains at the full lr, block 11 at ``decay`` x lr, embed at ``decay**13``.
    """
    ranks, count = layer_ranks(names, layers)
    return {name: decay ** (count - rank) for name, rank in ranks.items()}


def _rule_patterns(rule: dict[str, Any], index: int) -> tuple[str, ...]:
    patterns = rule.get("params")
    if isinstance(patterns, str):
        return (patterns,)
    if isinstance(patterns, (tuple, list)) and patterns and all(isinstance(item, str) for item in patterns):
        return tuple(patterns)
    raise ConfigError(
        f"param_groups[{index}] needs 'params': an fnmatch pattern of parameter names or a tuple of them, got "
        f"{patterns!r}"
    )


def parameter_groups(
    model: nn.Module,
    weight_decay: float,
    no_weight_decay: tuple[str, ...],
    rules: Sequence[dict[str, Any]] = (),
    layers: Sequence[str] = (),
    layer_decay: float = 1.0,
) -> list[dict[str, Any]]:
    """Trainable parameters in optimiser groups, one per distinct setting (``params``, ``weight_decay``,
    ``lr_scale`` and any optimiser keyword of a rule).

    A parameter takes the settings of the first of `rules` (`Recipe.param_groups`) whose ``params`` pattern
    matches its name; its weight decay is the rule's ``weight_decay`` if given, else 0 when the name contains one
    of the `no_weight_decay` substrings, else `weight_decay`; its ``lr_scale`` is the rule's (default 1) times its
    `layer_lr_scales` factor. Groups are ordered by rule (parameters matching none last), then decayed before
    not decayed, then from the input layer on; empty groups are left out.

    Raises:
        ConfigError: a rule without ``params``, or a pattern that matches no trainable parameter.
    """
    named = [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]
    names = [name for name, _ in named]
    ranks = layer_ranks(names, layers)[0] if layers else dict.fromkeys(names, 0)
    scales = layer_lr_scales(names, layers, layer_decay) if layers else dict.fromkeys(names, 1.0)
    compiled = [[_name_regex(pattern) for pattern in _rule_patterns(rule, i)] for i, rule in enumerate(rules)]
    used = [False] * len(rules)
    keyed: dict[tuple, dict[str, Any]] = {}
    first_rank: dict[tuple, int] = {}
    for name, parameter in named:
        position = next((i for i, regexes in enumerate(compiled) if any(r.fullmatch(name) for r in regexes)), None)
        rule = rules[position] if position is not None else {}
        if position is not None:
            used[position] = True
        excluded = "weight_decay" not in rule and any(pattern in name for pattern in no_weight_decay)
        decay = rule.get("weight_decay", 0.0 if excluded else weight_decay)
        scale = rule.get("lr_scale", 1.0) * scales[name]
        extra = {key: value for key, value in rule.items() if key not in ("params", "weight_decay", "lr_scale")}
        key = (len(rules) if position is None else position, decay == 0 and weight_decay != 0, decay, scale)
        key += (repr(sorted(extra.items())),)
        if key not in keyed:
            keyed[key] = {"params": [], "weight_decay": decay, "lr_scale": scale, **extra}
            first_rank[key] = ranks[name]
        keyed[key]["params"].append(parameter)
    for index, rule in enumerate(rules):
        if not used[index]:
            patterns = ", ".join(_rule_patterns(rule, index))
            raise ConfigError(f"param_groups[{index}] pattern(s) {patterns} match no trainable parameter")
    return [keyed[key] for key in sorted(keyed, key=lambda key: (key[0], key[1], first_rank[key]))]


def _check_group_keys(recipe: Recipe) -> None:
    optimizer = OPTIMIZERS[recipe.optimizer]
    accepted = set(inspect.signature(optimizer).parameters) - {"params", "lr"}
    for index, rule in enumerate(recipe.param_groups):
        unknown = sorted(set(rule) - {"params", "lr_scale", "weight_decay"} - accepted)
        if unknown:
            raise ConfigError(
                f"param_groups[{index}]: {recipe.optimizer!r} has no setting {', '.join(map(repr, unknown))}; valid: "
                f"params, lr_scale, {', '.join(sorted(accepted))}"
            )


def build_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimiser over `parameter_groups`; each group starts at ``recipe.lr * lr_scale``."""
    _check_group_keys(recipe)
    groups = parameter_groups(
        model, recipe.weight_decay, recipe.no_weight_decay, recipe.param_groups, recipe.layers, recipe.layer_decay
    )
    if not groups:
        raise ConfigError(f"model {recipe.model!r} has no trainable parameters")
    for group in groups:
        group["lr"] = recipe.lr * group["lr_scale"]
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
    if recipe.schedule in ("constant", "plateau"):
        return 1.0
    if recipe.schedule == "step":
        return recipe.step_gamma ** sum(milestone <= elapsed for milestone in recipe.step_milestones)
    decay_epochs = recipe.epochs - recipe.warmup_epochs
    progress = min(max((elapsed - recipe.warmup_epochs) / decay_epochs, 0.0), 1.0)
    floor = recipe.min_lr / recipe.lr
    return floor + (1.0 - floor) * (1.0 + math.cos(math.pi * progress)) / 2.0


class Plateau:
    """The ``plateau`` rule (see the module docstring) as a learning-rate multiplier with plain-data state.

    Attributes:
        multiplier: current factor on the lr (starts at 1). best: best metric value so far (-inf or +inf before
            any). bad_epochs: epochs in a row without improvement.
    """

    def __init__(
        self, higher_is_better: bool, factor: float, patience: int, threshold: float, lr: float, min_lr: float
    ) -> None:
        self.higher_is_better = higher_is_better
        self.factor, self.patience, self.threshold = factor, patience, threshold
        self.lr, self.floor = lr, min_lr / lr
        self.multiplier = 1.0
        self.best = -math.inf if higher_is_better else math.inf
        self.bad_epochs = 0

    def improves(self, value: float) -> bool:
        """Whether `value` beats the best so far by the relative threshold (NaN never does)."""
        if self.higher_is_better:
            return value > self.best * (1.0 + self.threshold)
        return value < self.best * (1.0 - self.threshold)

    def update(self, value: float) -> bool:
        """Count one epoch with metric `value`; returns whether the multiplier was lowered."""
        if self.improves(value):
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        if self.bad_epochs <= self.patience:
            return False
        self.bad_epochs = 0
        lowered = max(self.multiplier * self.factor, self.floor)
        if self.lr * (self.multiplier - lowered) <= PLATEAU_EPS:
            return False
        self.multiplier = lowered
        return True

    def state_dict(self) -> dict[str, float | int]:
        return {"multiplier": self.multiplier, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        self.multiplier, self.best, self.bad_epochs = state["multiplier"], state["best"], state["bad_epochs"]


class RecipeScheduler(torch.optim.lr_scheduler.LambdaLR):
    """`LambdaLR` with factor ``lr_factor(step) * plateau multiplier``; ``step()`` after every optimiser step.

    `plateau` is a `Plateau` for ``schedule="plateau"`` (else None); `end_epoch` feeds it. Its state is saved in
    `state_dict` under ``"plateau"`` (plain data, so checkpoints stay loadable with ``weights_only=True``).
    """

    _NOT_SAVED = ("recipe", "steps_per_epoch", "plateau")

    def __init__(self, optimizer: torch.optim.Optimizer, steps_per_epoch: int, recipe: Recipe) -> None:
        self.recipe, self.steps_per_epoch = recipe, steps_per_epoch
        self.plateau = None
        if recipe.schedule == "plateau":
            self.plateau = Plateau(
                higher_is_better(recipe.selection_metric),
                recipe.plateau_factor,
                recipe.plateau_patience,
                recipe.plateau_threshold,
                recipe.lr,
                recipe.min_lr,
            )
        super().__init__(optimizer, lambda step: self.factor(step))

    def factor(self, step: int) -> float:
        """Multiplier of the peak lr at optimiser step `step` (0-based), with the current plateau multiplier."""
        multiplier = 1.0 if self.plateau is None else self.plateau.multiplier
        return lr_factor(step, self.steps_per_epoch, self.recipe) * multiplier

    def end_epoch(self, value: float) -> None:
        """Give the plateau rule this epoch's validation selection metric (no-op for other schedules).

        A lowered multiplier is written to the optimiser at once, so the next step already uses it.
        """
        if self.plateau is None or not self.plateau.update(value):
            return
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base_lr * self.factor(self.last_epoch)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        state = {key: value for key, value in super().state_dict().items() if key not in self._NOT_SAVED}
        state["plateau"] = None if self.plateau is None else self.plateau.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        plateau = state.pop("plateau", None)
        super().load_state_dict(state)
        if self.plateau is not None:
            self.plateau.load_state_dict(plateau)


def build_scheduler(optimizer: torch.optim.Optimizer, steps_per_epoch: int, recipe: Recipe) -> RecipeScheduler:
    """The recipe's `RecipeScheduler`; call ``scheduler.step()`` after every optimiser step and
    ``scheduler.end_epoch(value)`` after every validation."""
    return RecipeScheduler(optimizer, steps_per_epoch, recipe)
