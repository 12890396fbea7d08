"""Model registry: `register_model`, `build`, `list_models`, `model_info`.

A model is registered by decorating a builder function whose keyword parameters (with defaults and type
hints) are the model's configuration. `build(name, **overrides)` checks every override against those
parameters before calling the builder, so a typo or a wrong type fails with a message naming the valid
options instead of deep inside a constructor.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = [
    "ModelEntry",
    "ModelInfo",
    "TensorSpec",
    "build",
    "list_models",
    "model_info",
    "register_model",
]


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """What a model consumes or produces.

    Attributes:
        shape: axis names in order, e.g. ``("B", "T", 2, 88, 88)``; ints are fixed sizes.
        axes: meaning of each named axis, e.g. ``{"B": "batch", "T": "time bins of 13.3 ms"}``.
        dtype: element type, e.g. ``"float32"``.
        description: what the values are (units, range).
    """

    shape: tuple[str | int, ...]
    axes: dict[str, str]
    dtype: str = "float32"
    description: str = ""

    def __post_init__(self) -> None:
        named = {axis for axis in self.shape if isinstance(axis, str)}
        unexplained = named - set(self.axes)
        if unexplained:
            raise ValueError(f"TensorSpec axes {sorted(unexplained)} of shape {self.shape} have no meaning in `axes`")


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A registered builder and the metadata attached to it."""

    name: str
    builder: Callable[..., nn.Module]
    family: str
    paper: str
    citation: str
    inputs: TensorSpec
    outputs: TensorSpec
    default_config: dict[str, Any]
    config_types: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Everything `model_info` reports about a registered model."""

    name: str
    family: str
    paper: str
    citation: str
    inputs: TensorSpec
    outputs: TensorSpec
    default_config: dict[str, Any]
    num_params: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy."""
        return dataclasses.asdict(self)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    family: str,
    paper: str,
    citation: str,
    inputs: TensorSpec,
    outputs: TensorSpec,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering `builder` under `name`.

    The builder's keyword parameters are the model's configuration: each needs a default and a type hint,
    and together they form the default config reported by `model_info` and checked by `build`.
    """

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered (by {_REGISTRY[name].builder.__module__})")
        defaults, hints = _builder_config(builder)
        _REGISTRY[name] = ModelEntry(
            name=name,
            builder=builder,
            family=family,
            paper=paper,
            citation=citation,
            inputs=inputs,
            outputs=outputs,
            default_config=defaults,
            config_types=hints,
        )
        return builder

    return decorator


def _builder_config(builder: Callable[..., nn.Module]) -> tuple[dict[str, Any], dict[str, Any]]:
    hints = typing.get_type_hints(builder)
    defaults: dict[str, Any] = {}
    for parameter in inspect.signature(builder).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"builder {builder.__qualname__} must list its options explicitly, not *{parameter.name}")
        if parameter.default is parameter.empty:
            raise TypeError(f"builder {builder.__qualname__}: option {parameter.name!r} needs a default")
        if parameter.name not in hints:
            raise TypeError(f"builder {builder.__qualname__}: option {parameter.name!r} needs a type hint")
        defaults[parameter.name] = parameter.default
    return defaults, {key: hints[key] for key in defaults}


def _entry(name: str) -> ModelEntry:
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str, got {type(name).__name__}")
    _load_families()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.5)
        if close:
            hint = f"closest: {', '.join(close)}"
        else:
            hint = f"available: {', '.join(sorted(_REGISTRY)) or '(none)'}"
        raise KeyError(f"unknown model {name!r}; {hint}")
    return _REGISTRY[name]


def _load_families() -> None:
    """Import the model families and their converters so that they register themselves."""
    import zoo.converters  # noqa: F401  (imported for its registration side effect)
    import zoo.models  # noqa: F401


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered models, optionally filtered by an fnmatch pattern such as ``"spikgru*"``."""
    _load_families()
    names = sorted(_REGISTRY)
    if pattern is None:
        return names
    return [name for name in names if fnmatch.fnmatchcase(name, pattern)]


def resolve_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The full configuration `build(name, **overrides)` would use, after checking every override."""
    entry = _entry(name)
    valid = sorted(entry.default_config)
    for key, value in overrides.items():
        if key not in entry.default_config:
            close = difflib.get_close_matches(key, valid, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise TypeError(f"{name}: unknown option {key!r}{hint}; valid options: {', '.join(valid)}")
        expected = entry.config_types[key]
        if not _matches_type(value, expected):
            raise TypeError(
                f"{name}: option {key!r} expects {type_name(expected)}, got {type(value).__name__} {value!r}; "
                f"valid options: {', '.join(valid)}"
            )
    return {**entry.default_config, **overrides}


def build(name: str, **overrides: Any) -> nn.Module:
    """Build the registered model `name` with its default config updated by `overrides`.

    Raises:
        KeyError: unknown model (the message lists the closest names).
        TypeError: unknown option or a value of the wrong type (the message lists the valid options).
    """
    config = resolve_config(name, **overrides)
    return _entry(name).builder(**config)


def model_info(name: str) -> ModelInfo:
    """Family, paper, input/output spec, default config and parameter count of a registered model.

    The parameter count comes from building the model on the ``meta`` device, so no memory is allocated.
    """
    entry = _entry(name)
    with torch.device("meta"):
        model = entry.builder(**entry.default_config)
    return ModelInfo(
        name=entry.name,
        family=entry.family,
        paper=entry.paper,
        citation=entry.citation,
        inputs=entry.inputs,
        outputs=entry.outputs,
        default_config=dict(entry.default_config),
        num_params=sum(parameter.numel() for parameter in model.parameters()),
    )


def _matches_type(value: Any, expected: Any) -> bool:
    if expected is Any:
        return True
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return any(_matches_type(value, option) for option in typing.get_args(expected))
    if origin is typing.Literal:
        return value in typing.get_args(expected)
    if expected is type(None):
        return value is None
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (tuple, list):
        if not isinstance(value, origin):
            return False
        args = typing.get_args(expected)
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(_matches_type, value, args))
        return all(_matches_type(item, args[0]) for item in value) if args else True
    if origin is not None:
        return isinstance(value, origin)
    return isinstance(value, expected)


def type_name(expected: Any) -> str:
    """Readable name of a type hint for error messages (``int``, ``float | None``, ``Literal['a', 'b']``)."""
    return getattr(expected, "__name__", None) or str(expected).replace("typing.", "")
