"""Load checkpoints of the original research code into jellyzoo models.

Each family registers one converter per model name with `register_converter`, in the final section of its model
module (``zoo/models/<family>.py``, "Conversion from the original checkpoints"); a converter maps the original
repository's state-dict keys (and tensor layouts) onto ours. `from_reference` builds the model, converts the state
dict and loads it strictly (`zoo.weights.load_state_dict_strict`), so a missing, unexpected or mis-shaped key is an
error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from zoo.errors import ConfigError
from zoo.names import NameTable
from zoo.registry import build, resolve_config
from zoo.weights import load_state_dict_strict

__all__ = ["convert_state_dict", "from_reference", "register_converter"]

StateDict = Mapping[str, torch.Tensor]
Converter = Callable[[StateDict, dict[str, Any]], dict[str, torch.Tensor]]

_CONVERTERS: NameTable[Converter] = NameTable("converter")


def register_converter(*names: str) -> Callable[[Converter], Converter]:
    """Decorator registering `converter(state_dict, config) -> our_state_dict` for the given model names.

    Raises:
        ConfigError: a model name that already has a converter.
    """

    def decorator(converter: Converter) -> Converter:
        for name in names:
            _CONVERTERS.add(name, converter, origin=converter.__module__)
        return converter

    return decorator


def convert_state_dict(name: str, state_dict: StateDict, **overrides: Any) -> dict[str, torch.Tensor]:
    """Map an original checkpoint's `state_dict` to the keys of `zoo.build(name, **overrides)`.

    Floating tensors are cast to float32 (the reference fixtures store float16).

    Raises:
        ConfigError: unknown model, or no converter for it.
    """
    config = resolve_config(name, **overrides)
    if name not in _CONVERTERS:
        raise ConfigError(
            f"no converter from the original code for {name!r}; models with one: {', '.join(_CONVERTERS.names())}"
        )
    upcast = {key: (value.float() if value.is_floating_point() else value) for key, value in state_dict.items()}
    return _CONVERTERS.get(name)(upcast, config)


def from_reference(name: str, state_dict: StateDict, **overrides: Any) -> nn.Module:
    """Build `name` with `overrides` and load a checkpoint saved by the original repository into it.

    Raises:
        ConfigError: unknown model, or no converter for it.
        ValueError: the converted checkpoint does not match the model (missing, unexpected or mis-shaped keys).
    """
    converted = convert_state_dict(name, state_dict, **overrides)
    model = build(name, **overrides)
    load_state_dict_strict(model, converted, f"{name}: the converted original checkpoint")
    return model
