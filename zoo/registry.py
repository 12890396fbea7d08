"""Model registry: `register_model`, `build`, `load`, `list_models`, `model_info`.

A model is registered by decorating a builder function whose keyword parameters (with defaults and type hints)
are the model's configuration. `build(name, **overrides)` checks every override against those parameters before
calling the builder, so a typo or a wrong type fails with a message naming the valid options instead of deep
inside a constructor. The registry imports no model family: ``import zoo`` imports `zoo.models`, whose modules
register themselves here. Names are held in a `zoo.names.NameTable`: registering a name twice, or looking up an
unknown one, is a `zoo.errors.ConfigError` naming the closest registered names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.input_check import install_input_check
from zoo.names import NameTable
from zoo.options import check_options, declared_options
from zoo.weights import Checkpoint, load_weights, read_checkpoint

__all__ = [
    "ModelEntry",
    "ModelInfo",
    "SmallConfig",
    "TensorSpec",
    "build",
    "list_models",
    "load",
    "model_info",
    "register_model",
    "resolve_config",
    "small_inputs",
]


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One tensor a model consumes or produces.

    Attributes:
        shape: axis names in order, e.g. ``("B", "T", 2, 88, 88)``; ints are fixed sizes.
        axes: meaning of each named axis of `shape` (and of no other), e.g. ``{"B": "batch", "T": "time bins"}``.
        dtype: element type, a `torch` dtype name such as ``"float32"`` or ``"int64"``.
        description: what the values are (units, range).
        optional: the forward argument may be left out (inputs only).
        sizes: the paper's size of named axes, e.g. ``{"B": 32, "T": 90}`` (for benchmarks at the paper's scale).
        value_range: inclusive bounds of an integer input's values, e.g. token ids ``(1, 1047)``, so that tools
            can generate valid inputs (None: no generic values).
    """

    shape: tuple[str | int, ...]
    axes: dict[str, str]
    dtype: str = "float32"
    description: str = ""
    optional: bool = False
    sizes: dict[str, int] = dataclasses.field(default_factory=dict)
    value_range: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        named = {axis for axis in self.shape if isinstance(axis, str)}
        if named - set(self.axes):
            raise ValueError(
                f"TensorSpec axes {sorted(named - set(self.axes))} of shape {self.shape} have no meaning in `axes`"
            )
        if set(self.axes) - named:
            raise ValueError(f"TensorSpec `axes` explains {sorted(set(self.axes) - named)}, not in shape {self.shape}")
        if set(self.sizes) - named:
            raise ValueError(f"TensorSpec `sizes` gives {sorted(set(self.sizes) - named)}, not in shape {self.shape}")
        if not isinstance(getattr(torch, self.dtype, None), torch.dtype):
            raise ValueError(f"TensorSpec dtype {self.dtype!r} is not a torch dtype name (e.g. 'float32', 'int64')")
        if self.value_range is not None:
            low, high = self.value_range
            if getattr(torch, self.dtype).is_floating_point or low > high:
                raise ValueError(
                    f"TensorSpec value_range {self.value_range} needs an integer dtype and low <= high "
                    f"(dtype {self.dtype!r})"
                )


@dataclasses.dataclass(frozen=True)
class SmallConfig:
    """A small, fast configuration of a model for checks that run every registered model (the registry-wide tests).

    Floating-point inputs are drawn from a standard normal; integer inputs (lengths, token ids) have no generic
    meaning, so their values are given here (a required integer input without values is an error; an optional one
    is left out).

    Attributes:
        overrides: builder options that shrink the model (e.g. ``{"hidden_size": 16}``).
        sizes: sizes of the named input axes in the small inputs (default 2 for ``B`` and 4 for any other name),
            e.g. ``{"H": 32, "W": 32}`` when the architecture needs a multiple of 32.
        values: nested lists for integer inputs, by input name, e.g. ``{"lengths": [4, 3]}``.
    """

    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    sizes: dict[str, int] = dataclasses.field(default_factory=dict)
    values: dict[str, Any] = dataclasses.field(default_factory=dict)

    def axis_size(self, axis: str | int) -> int:
        """Size of `axis` in the small inputs."""
        if isinstance(axis, int):
            return axis
        return self.sizes.get(axis, 2 if axis == "B" else 4)


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A registered builder and the metadata attached to it."""

    name: str
    builder: Callable[..., nn.Module]
    family: str
    paper: str
    citation: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    default_config: dict[str, Any]
    config_types: dict[str, Any]
    small: SmallConfig


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Everything `model_info` reports about a registered model.

    `inputs` are keyed by the forward argument names, `outputs` by a descriptive name; `config` is the builder
    configuration the parameter count refers to (the default one unless `model_info` got overrides).
    """

    name: str
    family: str
    paper: str
    citation: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    config: dict[str, Any]
    num_params: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy."""
        return dataclasses.asdict(self)


_MODELS: NameTable[ModelEntry] = NameTable("model")


def _check_specs(name: str, role: str, specs: Any) -> dict[str, TensorSpec]:
    if not isinstance(specs, Mapping) or not specs:
        raise TypeError(
            f"register_model({name!r}): {role} must be a non-empty dict of TensorSpec keyed by "
            f"{'forward argument name' if role == 'inputs' else 'output name'}, got {type(specs).__name__}"
        )
    for key, spec in specs.items():
        if not isinstance(key, str) or not key.isidentifier() or not isinstance(spec, TensorSpec):
            raise TypeError(f"register_model({name!r}): {role}[{key!r}] must be a TensorSpec under an identifier")
    if role == "outputs" and any(spec.optional for spec in specs.values()):
        raise TypeError(f"register_model({name!r}): outputs cannot be optional")
    return dict(specs)


def register_model(
    name: str,
    *,
    family: str,
    paper: str,
    citation: str,
    inputs: dict[str, TensorSpec],
    outputs: dict[str, TensorSpec],
    small: SmallConfig | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering `builder` under `name`.

    The builder's keyword parameters are the model's configuration: each needs a default and a type hint, and
    together they form the default config reported by `model_info` and checked by `build`. `inputs` maps each
    forward argument name to its `TensorSpec` (in forward order); `outputs` names what forward returns. `small`
    declares the small configuration the registry-wide tests build (default: the default config).
    """
    inputs = _check_specs(name, "inputs", inputs)
    outputs = _check_specs(name, "outputs", outputs)

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        defaults, hints = declared_options(builder)
        entry = ModelEntry(
            name=name,
            builder=builder,
            family=family,
            paper=paper,
            citation=citation,
            inputs=inputs,
            outputs=outputs,
            default_config=defaults,
            config_types=hints,
            small=small or SmallConfig(),
        )
        check_options(entry.small.overrides, hints, owner=f"{name} small config")
        _MODELS.add(name, entry, origin=builder.__module__)
        return builder

    return decorator


def get_entry(name: str) -> ModelEntry:
    """The registry entry of `name`; an unknown name raises `ConfigError` listing the closest names."""
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str, got {type(name).__name__}")
    return _MODELS.get(name)


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered models, optionally filtered by an fnmatch pattern such as ``"spikgru*"``."""
    return _MODELS.names(pattern)


def resolve_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The full configuration `build(name, **overrides)` would use, after checking every override.

    Values are converted where the intent is unambiguous (an int for a float option, a list for a tuple one).

    Raises:
        ConfigError: unknown model.
        TypeError: unknown option (with the closest names) or a value of the wrong type (with the valid options).
    """
    entry = get_entry(name)
    return {**entry.default_config, **check_options(overrides, entry.config_types, owner=name)}


def build(
    name: str, checkpoint: str | Path | Checkpoint | Mapping[str, str | Path] | None = None, **overrides: Any
) -> nn.Module:
    """Build the registered model `name` with its default config updated by `overrides`.

    Args:
        name: registered model name (`list_models()`).
        checkpoint: weights to load, strictly (every key present, none left over, every shape equal):
            a path loads the whole model from a ``zoo.train`` checkpoint (``.pt``), a folder written by
            ``python -m zoo export`` (or its ``model.safetensors``) or a plain state-dict file; a mapping
            ``{prefix: path}`` loads each file into the sub-module at `prefix` only (``{"ann.": "resnet18.pth"}``
            loads a torchvision state dict into ``model.ann``), leaving the other parameters as initialised.
            A checkpoint that records its model must record `name` and the same config (`load` builds the saved
            config for you); a `Checkpoint` already read with `zoo.weights.read_checkpoint` is loaded whole.
        overrides: builder options (see `model_info(name).config`).

    Raises:
        ConfigError: unknown model (the message lists the closest names).
        TypeError: unknown option or a value of the wrong type (the message lists the valid options).
        FileNotFoundError / ValueError: a missing checkpoint file, or one that does not match the model (the
            message lists the missing, unexpected and mis-shaped keys).
    """
    config = resolve_config(name, **overrides)
    entry = get_entry(name)
    model = install_input_check(entry.builder(**config), name, entry.inputs)
    if checkpoint is not None:
        load_weights(model, checkpoint, model_name=name, model_config=config)
    return model


def load(path: str | Path) -> nn.Module:
    """The trained model saved at `path`, built with its saved configuration, weights loaded strictly, in eval mode.

    `path` is a ``zoo.train`` run directory (``best.pt``, else ``last.pt``), a ``zoo.train`` checkpoint, or a
    folder written by ``python -m zoo export`` (``model.safetensors`` + ``config.json``). Tensors are on the CPU;
    move the model with ``.to(device)``.

    Raises:
        FileNotFoundError / ValueError: nothing loadable at `path`, or a checkpoint that names no model.
        ConfigError: the saved model is not registered (e.g. a plugin not imported).
    """
    saved = read_checkpoint(path)
    if saved.model is None:
        raise ValueError(
            f"{str(saved.source)!r} names no model (a plain state dict); use zoo.build(NAME, checkpoint=...)"
        )
    return build(saved.model, checkpoint=saved, **saved.model_config).eval()


def small_inputs(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Inputs for the small configuration of `name` (`SmallConfig`), keyed by forward argument, on the CPU.

    Shapes follow the input specs with the small axis sizes; floating-point values are standard normal draws of
    a generator seeded with `seed`, integer values come from `SmallConfig.values`.

    Raises:
        ValueError: a required integer input has no values, or values of another shape than its spec.
    """
    entry = get_entry(name)
    generator = torch.Generator().manual_seed(seed)
    inputs = {}
    for key, spec in entry.inputs.items():
        shape = tuple(entry.small.axis_size(axis) for axis in spec.shape)
        dtype = getattr(torch, spec.dtype)
        if dtype.is_floating_point:
            inputs[key] = torch.randn(shape, generator=generator).to(dtype)
        elif key in entry.small.values:
            inputs[key] = torch.tensor(entry.small.values[key], dtype=dtype)
            if tuple(inputs[key].shape) != shape:
                raise ValueError(f"{name}: small values of {key!r} have shape {tuple(inputs[key].shape)}, spec {shape}")
        elif not spec.optional:
            raise ValueError(f"{name}: integer input {key!r} needs values in its SmallConfig(values={{{key!r}: ...}})")
    return inputs


def model_info(name: str, **overrides: Any) -> ModelInfo:
    """Family, paper, input/output specs, config and parameter count of a registered model.

    `overrides` are checked as by `build`; the parameter count is that of this configuration, computed by building
    the model on the ``meta`` device, so no memory is allocated.
    """
    entry = get_entry(name)
    config = resolve_config(name, **overrides)
    with torch.device("meta"):
        model = entry.builder(**config)
    return ModelInfo(
        name=entry.name,
        family=entry.family,
        paper=entry.paper,
        citation=entry.citation,
        inputs=dict(entry.inputs),
        outputs=dict(entry.outputs),
        config=config,
        num_params=sum(parameter.numel() for parameter in model.parameters()),
    )
