"""The input check `zoo.build` installs on every registered model: shape, dtype (with the fix named), named-axis
consistency and the opt-in finiteness check, all raised before the model's forward runs."""

from __future__ import annotations

import pytest
import torch

import zoo
from zoo.input_check import CHECK_INPUTS_ENV, check_inputs
from zoo.registry import TensorSpec, get_entry, small_inputs

MODELS = zoo.list_models()


def float_inputs(name: str) -> list[str]:
    return [key for key, spec in get_entry(name).inputs.items() if getattr(torch, spec.dtype).is_floating_point]


FLOAT_INPUT_MODELS = [name for name in MODELS if float_inputs(name)]
INTEGER_INPUT_MODELS = [name for name in MODELS if not float_inputs(name)]
"""Models that read integers only (e.g. token ids of a language model)."""


@pytest.fixture(scope="module")
def built() -> dict[str, torch.nn.Module]:
    return {}


def small_model(name: str, built: dict[str, torch.nn.Module]) -> torch.nn.Module:
    if name not in built:
        torch.manual_seed(0)
        built[name] = zoo.build(name, **get_entry(name).small.overrides)
    return built[name]


@pytest.mark.parametrize("name", FLOAT_INPUT_MODELS)
def test_every_model_refuses_wrong_dtype_rank_and_non_finite_inputs(
    name: str, built: dict[str, torch.nn.Module], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = small_model(name, built)
    inputs = small_inputs(name)
    key = float_inputs(name)[0]
    good = inputs[key]
    with pytest.raises(TypeError, match=rf"{name}: input '{key}' must be float32, got float64; convert it with "):
        model(**{**inputs, key: good.double()})
    with pytest.raises(TypeError, match=rf"{name}: input '{key}' must be float32, got int64"):
        model(**{**inputs, key: good.long()})
    with pytest.raises(ValueError, match=rf"{name}: input '{key}' must have {good.dim()} axes"):
        model(**{**inputs, key: good[0]})
    with pytest.raises(TypeError, match=rf"{name}: input '{key}' must be a torch.Tensor"):
        model(**{**inputs, key: good.tolist()})
    poisoned = good.clone()
    poisoned.view(-1)[0] = float("nan")
    monkeypatch.setenv(CHECK_INPUTS_ENV, "1")
    with pytest.raises(ValueError, match=rf"{name}: input '{key}' holds 1 non-finite values"):
        model(**{**inputs, key: poisoned})


@pytest.mark.parametrize("name", INTEGER_INPUT_MODELS)
def test_integer_input_models_refuse_wrong_dtype_and_rank(name: str, built: dict[str, torch.nn.Module]) -> None:
    model = small_model(name, built)
    inputs = small_inputs(name)
    key = next(iter(inputs))
    good = inputs[key]
    with pytest.raises(TypeError, match=rf"{name}: input '{key}' must be an integer tensor \(int64\), got float32"):
        model(**{**inputs, key: good.float()})
    with pytest.raises(ValueError, match=rf"{name}: input '{key}' must have {good.dim()} axes"):
        model(**{**inputs, key: good[0]})
    with pytest.raises(TypeError, match=rf"{name}: input '{key}' must be a torch.Tensor"):
        model(**{**inputs, key: good.tolist()})


def test_named_axes_fixed_sizes_and_integer_inputs() -> None:
    specs = {
        "features": TensorSpec(shape=("B", "T", 3), axes={"B": "batch", "T": "steps"}),
        "lengths": TensorSpec(shape=("B",), axes={"B": "batch"}, dtype="int64", optional=True),
    }
    check_inputs("m", specs, {"features": torch.zeros(2, 5, 3), "lengths": torch.tensor([5, 2])})
    check_inputs("m", specs, {"features": torch.zeros(2, 5, 3)})
    with pytest.raises(ValueError, match=r"axis B \(batch\) is 3 in input 'lengths' but 2 in input 'features'"):
        check_inputs("m", specs, {"features": torch.zeros(2, 5, 3), "lengths": torch.tensor([5, 2, 1])})
    with pytest.raises(ValueError, match=r"must have size 3 where the spec fixes it, got shape \(2, 5, 4\)"):
        check_inputs("m", specs, {"features": torch.zeros(2, 5, 4)})
    with pytest.raises(
        TypeError, match=r"'lengths' must be an integer tensor \(int64\), got float32; .*lengths.long\(\)"
    ):
        check_inputs("m", specs, {"features": torch.zeros(2, 5, 3), "lengths": torch.tensor([5.0, 2.0])})
    with pytest.raises(TypeError, match="m: missing input 'features'"):
        check_inputs("m", specs, {"lengths": torch.tensor([5, 2])})
    half = torch.zeros(2, 5, 3, dtype=torch.float16)
    check_inputs("m", specs, {"features": half}, parameter_dtype=torch.float16)
    with pytest.raises(TypeError, match=r"must be float16, got float32; convert it with features.half\(\)"):
        check_inputs("m", specs, {"features": half.float()}, parameter_dtype=torch.float16)
    nan = torch.full((2, 5, 3), float("nan"))
    check_inputs("m", specs, {"features": nan})  # off by default: no host synchronisation
    with pytest.raises(ValueError, match="holds 30 non-finite values"):
        check_inputs("m", specs, {"features": nan}, check_finite=True)
