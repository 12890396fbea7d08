"""A cheap check of a model's inputs against its registered `TensorSpec`\\s, run before every forward.

`zoo.build` installs it on every model it builds (a forward pre-hook, so every family gets it without code of its
own). For each input named in the registry's ``inputs`` it checks, from tensor metadata only (no host-device
synchronisation, no kernel launch):

- presence: a required input is given and is a tensor;
- shape: the number of axes, every fixed size, and that a named axis has one size across the inputs
  (``features [B, T, F]`` and ``lengths [B]`` agree on B);
- dtype: a floating-point input must have the dtype of the model's parameters (the spec's dtype for a model
  without parameters): float64 or an integer tensor for a float32 model is an error that names the fix, e.g.
  ``x.float()``; an integer input must be an integer tensor.

With ``JELLYZOO_CHECK_INPUTS=1`` in the environment it also checks that floating-point inputs are finite (NaN or Inf
would pass through spiking layers unnoticed); that check reads one number back from the device, so it is off by
default.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["CHECK_INPUTS_ENV", "InputCheck", "check_inputs", "install_input_check"]

CHECK_INPUTS_ENV = "JELLYZOO_CHECK_INPUTS"
"""Environment variable; ``1`` (or ``true``/``yes``) turns on the finiteness check (one host sync per input)."""

_CONVERSIONS = {torch.float32: ".float()", torch.float64: ".double()", torch.float16: ".half()"}


def _finite_check_enabled() -> bool:
    return os.environ.get(CHECK_INPUTS_ENV, "").strip().lower() in ("1", "true", "yes")


def _shape_text(shape: tuple[str | int, ...]) -> str:
    return "[" + ", ".join(str(axis) for axis in shape) + "]"


def check_inputs(
    model_name: str,
    specs: Mapping[str, Any],
    inputs: Mapping[str, Any],
    *,
    parameter_dtype: torch.dtype | None = None,
    check_finite: bool = False,
) -> None:
    """Check `inputs` (forward argument name -> value) against `specs` (name -> `zoo.TensorSpec`).

    Raises:
        TypeError: a missing required input, a non-tensor, or a wrong dtype (the message names the conversion).
        ValueError: a wrong number of axes, a wrong fixed size, a named axis with two sizes, or (`check_finite`)
            a NaN/Inf value.
    """
    sizes: dict[str, tuple[int, str]] = {}
    for name, spec in specs.items():
        value = inputs.get(name)
        if value is None:
            if not spec.optional:
                raise TypeError(f"{model_name}: missing input {name!r} {_shape_text(spec.shape)} {spec.dtype}")
            continue
        if not isinstance(value, torch.Tensor):
            separate = len(specs) > 1 and isinstance(value, (tuple, list))
            hint = f"; pass the inputs as separate arguments: model({', '.join(specs)})" if separate else ""
            raise TypeError(
                f"{model_name}: input {name!r} must be a torch.Tensor {_shape_text(spec.shape)} {spec.dtype}, "
                f"got {type(value).__name__}{hint}"
            )
        expected = getattr(torch, spec.dtype)
        if expected.is_floating_point:
            target = parameter_dtype if parameter_dtype is not None else expected
            if value.dtype != target:
                fix = _CONVERSIONS.get(target, f".to({target})")
                raise TypeError(
                    f"{model_name}: input {name!r} must be {str(target).replace('torch.', '')}, got "
                    f"{str(value.dtype).replace('torch.', '')}; convert it with {name}{fix}"
                )
        elif value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
            raise TypeError(
                f"{model_name}: input {name!r} must be an integer tensor ({spec.dtype}), got "
                f"{str(value.dtype).replace('torch.', '')}; convert it with {name}.long()"
            )
        if value.dim() != len(spec.shape):
            raise ValueError(
                f"{model_name}: input {name!r} must have {len(spec.shape)} axes {_shape_text(spec.shape)}, got shape "
                f"{tuple(value.shape)}"
            )
        for axis, size in zip(spec.shape, value.shape, strict=True):
            if isinstance(axis, int):
                if size != axis:
                    raise ValueError(
                        f"{model_name}: input {name!r} {_shape_text(spec.shape)} must have size {axis} where the spec "
                        f"fixes it, got shape {tuple(value.shape)}"
                    )
            elif axis in sizes and sizes[axis][0] != size:
                seen, other = sizes[axis]
                raise ValueError(
                    f"{model_name}: axis {axis} ({spec.axes[axis]}) is {size} in input {name!r} but {seen} in input "
                    f"{other!r}"
                )
            else:
                sizes.setdefault(axis, (int(size), name))
        if check_finite and value.dtype.is_floating_point:
            finite = torch.isfinite(value)
            if not bool(finite.all()):
                raise ValueError(
                    f"{model_name}: input {name!r} holds {int((~finite).sum())} non-finite values (NaN or Inf) "
                    f"({CHECK_INPUTS_ENV}=1)"
                )


class InputCheck:
    """Forward pre-hook (``with_kwargs=True``) running `check_inputs` for one registered model."""

    def __init__(self, model_name: str, specs: Mapping[str, Any], forward: Any) -> None:
        self.model_name = model_name
        self.specs = dict(specs)
        self.signature = inspect.signature(forward)
        kinds = {parameter.kind for parameter in self.signature.parameters.values()}
        self.positional = inspect.Parameter.VAR_POSITIONAL in kinds  # forward(*inputs): inputs in spec order
        unknown = [name for name in self.specs if name not in self.signature.parameters]
        if unknown and not self.positional:
            raise TypeError(
                f"{model_name}: input specs {unknown} are not arguments of its forward{self.signature}; the registry's "
                "input names must be the forward's argument names"
            )

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if self.positional:
            inputs = {**dict(zip(self.specs, args, strict=False)), **kwargs}
        else:
            try:
                inputs = self.signature.bind(*args, **kwargs).arguments
            except TypeError as error:
                raise TypeError(f"{self.model_name}: {error} (inputs: {', '.join(self.specs)})") from None
        parameter = next((p for p in module.parameters() if p.is_floating_point()), None)
        check_inputs(
            self.model_name,
            self.specs,
            inputs,
            parameter_dtype=None if parameter is None else parameter.dtype,
            check_finite=_finite_check_enabled(),
        )


def install_input_check(model: nn.Module, model_name: str, specs: Mapping[str, Any]) -> nn.Module:
    """Register the input check on `model` (checked before every call of its ``forward``); returns `model`."""
    model.register_forward_pre_hook(InputCheck(model_name, specs, model.forward), with_kwargs=True)
    return model
