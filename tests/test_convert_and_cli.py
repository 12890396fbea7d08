"""Converter registry and the `python -m zoo` look-ups."""

from __future__ import annotations

import copy
import json
from typing import Literal

import pytest
import torch
from torch import nn

import zoo
from zoo import convert, registry
from zoo.__main__ import main, models_table

SPEC = {"x": zoo.TensorSpec(shape=("B", 2), axes={"B": "batch"})}
LENGTHS = zoo.TensorSpec(shape=("B",), axes={"B": "batch"}, dtype="int64", optional=True)


class TwoLayer(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.first = nn.Linear(2, width)
        self.second = nn.Linear(width, 2)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_MODELS", copy.deepcopy(registry._MODELS))
    monkeypatch.setattr(convert, "_CONVERTERS", copy.deepcopy(convert._CONVERTERS))

    @zoo.register_model("test-two-layer", family="test", paper="p", citation="c", inputs=SPEC, outputs=SPEC)
    def two_layer(width: int = 3) -> nn.Module:
        return TwoLayer(width)

    @convert.register_converter("test-two-layer")
    def rename(state_dict, config):
        assert config == {"width": state_dict["fc1.weight"].shape[0]}
        return {key.replace("fc1", "first").replace("fc2", "second"): value for key, value in state_dict.items()}


def original_checkpoint(width: int) -> dict[str, torch.Tensor]:
    return {
        "fc1.weight": torch.randn(width, 2).half(),
        "fc1.bias": torch.randn(width).half(),
        "fc2.weight": torch.randn(2, width).half(),
        "fc2.bias": torch.randn(2).half(),
    }


def test_from_reference_renames_upcasts_and_loads(registered: None) -> None:
    checkpoint = original_checkpoint(4)
    model = convert.from_reference("test-two-layer", checkpoint, width=4)
    assert model.first.weight.dtype == torch.float32
    assert torch.equal(model.second.bias, checkpoint["fc2.bias"].float())


def test_from_reference_rejects_a_checkpoint_of_another_shape_or_layout(registered: None) -> None:
    checkpoint = original_checkpoint(3)
    checkpoint["fc3.weight"] = torch.zeros(1)
    with pytest.raises(
        ValueError, match=r"the converted original checkpoint does not match .*unexpected keys: \['fc3.weight'\]"
    ):
        convert.from_reference("test-two-layer", checkpoint)
    checkpoint = original_checkpoint(3)
    del checkpoint["fc2.bias"]
    with pytest.raises(ValueError, match=r"missing keys: \['second.bias'\]"):
        convert.from_reference("test-two-layer", checkpoint)


def test_from_reference_errors_for_unknown_models_and_missing_converters(registered: None) -> None:
    with pytest.raises(zoo.ConfigError, match="closest: test-two-layer"):
        convert.from_reference("test-two-layr", {})

    @zoo.register_model("test-no-converter", family="test", paper="p", citation="c", inputs=SPEC, outputs=SPEC)
    def no_converter(width: int = 3) -> nn.Module:
        return TwoLayer(width)

    with pytest.raises(
        zoo.ConfigError,
        match="no converter from the original code for 'test-no-converter'; models with one: .*test-two-layer",
    ):
        convert.from_reference("test-no-converter", {})


def test_cli_lists_and_describes_models(registered: None, capsys: pytest.CaptureFixture[str]) -> None:
    @zoo.register_model(
        "test-two-inputs", family="test", paper="p", citation="c", inputs={**SPEC, "lengths": LENGTHS}, outputs=SPEC
    )
    def two_inputs(width: int = 3, mode: Literal["a", "b"] = "a", scale: float | None = None) -> nn.Module:
        return TwoLayer(width)

    table = models_table("test-*")
    assert table.splitlines()[0] == "| model | family | parameters | inputs | outputs |"
    assert "| `test-two-layer` | test | 17 | `x: (B, 2)` | `x: (B, 2)` |" in table
    assert "| `test-two-inputs` | test | 17 | `x: (B, 2)`<br>`lengths: (B,) int64` (optional) | `x: (B, 2)` |" in table
    assert main(["info", "test-two-layer"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["num_params"] == 2 * 3 + 3 + 3 * 2 + 2 and described["config"] == {"width": 3}
    assert described["inputs"]["x"]["shape"] == ["B", 2]
    assert main(["info", "test-two-inputs", "width=5", "mode=b", "scale=None"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["num_params"] == 2 * 5 + 5 + 5 * 2 + 2
    assert described["config"] == {"width": 5, "mode": "b", "scale": None}
    assert described["inputs"]["lengths"]["optional"] is True


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["info", "test-two-layr"], "python -m zoo info: unknown model 'test-two-layr'; closest: test-two-layer"),
        (["info", "test-two-layer", "width=abc"], "test-two-layer: option 'width' expects int, got 'abc'; valid"),
        (["info", "test-two-layer", "widht=4"], "unknown option 'widht' (did you mean width?); valid options: width"),
        (["info", "test-two-layer", "width"], "option 'width' is not of the form OPTION=VALUE"),
        (["export", "no/such/run", "out"], "checkpoint 'no/such/run' does not exist"),
    ],
)
def test_cli_errors_are_one_line_with_exit_status_2(
    registered: None, capsys: pytest.CaptureFixture[str], words: list[str], message: str
) -> None:
    assert main(words) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
