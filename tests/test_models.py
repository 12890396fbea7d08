"""Registry-wide checks generated from each model's specs: a family is covered the moment it registers.

For every model of `zoo.models`, at its small configuration (`SmallConfig` passed to `register_model`): the input
specs name forward arguments; the model builds with `model_info`'s parameter count; forward on inputs made from
the specs gives outputs of the output specs' number, shapes and dtypes; backward gives finite gradients; building
and running are deterministic given the seed, and a second forward on the same input gives the same output (every
forward starts from fresh state: a second forward of the same model gives the same output).
"""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

import zoo
from zoo.registry import TensorSpec, get_entry, small_inputs

MODELS = [name for name in zoo.list_models() if get_entry(name).builder.__module__.startswith("zoo.models.")]
MAX_SMALL_PARAMS = 40_000_000
"""A small config above this is an error (a forgotten `small=`: RAVEn Large has 486M parameters); ReSpike-ResNet-50's
fixed torchvision trunk needs ~30M. The suite must stay fast on 2 CPU cores."""


def _as_tuple(output: object, names: list[str]) -> tuple:
    if isinstance(output, dict):
        assert list(output) == names, f"forward returned the keys {list(output)}, output specs {names}"
        return tuple(output.values())
    return tuple(output) if isinstance(output, (tuple, list)) else (output,)


def _build(name: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return zoo.build(name, **get_entry(name).small.overrides)


def _run(name: str, model: nn.Module, inputs: dict[str, torch.Tensor], seed: int) -> tuple:
    torch.manual_seed(seed)
    return _as_tuple(model(**inputs), list(get_entry(name).outputs))


def _check_shape(name: str, key: str, value: torch.Tensor, spec: TensorSpec, sizes: dict[str, int]) -> None:
    assert isinstance(value, torch.Tensor), f"{name}: output {key!r} is a {type(value).__name__}, not a tensor"
    assert value.dim() == len(spec.shape), f"{name}: output {key!r} has shape {tuple(value.shape)}, spec {spec.shape}"
    for axis, size in zip(spec.shape, value.shape, strict=True):
        expected = axis if isinstance(axis, int) else sizes.get(axis)
        assert expected is None or size == expected, (
            f"{name}: output {key!r} axis {axis!r} has size {size}, expected {expected} (shape {tuple(value.shape)})"
        )
    assert value.dtype == getattr(torch, spec.dtype), f"{name}: output {key!r} is {value.dtype}, spec {spec.dtype}"


@pytest.mark.parametrize("name", MODELS)
def test_model_builds_runs_and_trains_from_its_specs(name: str) -> None:
    entry = get_entry(name)
    info = zoo.model_info(name, **entry.small.overrides)
    assert info.num_params <= MAX_SMALL_PARAMS, (
        f"{name}: {info.num_params:,} parameters at its small config; give register_model a smaller "
        "`small=SmallConfig(overrides=...)`"
    )
    model = _build(name, seed=0)
    initial = {key: value.clone() for key, value in model.state_dict().items()}
    assert sum(parameter.numel() for parameter in model.parameters()) == info.num_params

    parameters = inspect.signature(model.forward).parameters
    assert set(entry.inputs) <= set(parameters), f"{name}: input specs {list(entry.inputs)} vs forward{parameters}"
    required = {key for key, parameter in parameters.items() if parameter.default is parameter.empty}
    assert required <= {key for key, spec in entry.inputs.items() if not spec.optional}, f"{name}: {required}"
    optional = [key for key, spec in entry.inputs.items() if spec.optional and key in required]
    assert not optional, f"{name}: optional inputs {optional} have no default in forward"

    inputs = small_inputs(name, seed=0)
    sizes = {}
    for key, value in inputs.items():
        sizes.update(zip(entry.inputs[key].shape, value.shape, strict=True))
    outputs = _run(name, model, inputs, seed=1)
    assert len(outputs) == len(entry.outputs), f"{name}: {len(outputs)} outputs, specs {list(entry.outputs)}"
    for (key, spec), value in zip(entry.outputs.items(), outputs, strict=True):
        _check_shape(name, key, value, spec, sizes)

    loss = sum(value.float().square().mean() for value in outputs if value.is_floating_point())
    loss.backward()
    gradients = [parameter.grad for parameter in model.parameters() if parameter.grad is not None]
    assert gradients, f"{name}: no parameter received a gradient"
    assert all(torch.isfinite(gradient).all() for gradient in gradients), f"{name}: non-finite gradients"

    rebuilt = _build(name, seed=0).state_dict()
    assert initial.keys() == rebuilt.keys() and all(torch.equal(initial[key], rebuilt[key]) for key in initial)
    with torch.no_grad():
        repeated = _run(name, model, inputs, seed=1)
    for key, value, first in zip(entry.outputs, repeated, outputs, strict=True):
        assert torch.equal(value, first.detach()), f"{name}: output {key!r} differs between two forwards, one seed"
