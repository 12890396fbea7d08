"""The model registry: register, build, list, info, and its error messages."""

from __future__ import annotations

import copy
from typing import Literal

import pytest
import torch
from torch import nn

import zoo
from zoo import registry

SPEC_IN = {"x": zoo.TensorSpec(shape=("B", "T", 3), axes={"B": "batch", "T": "time steps"}, description="features")}
SPEC_OUT = {"logits": zoo.TensorSpec(shape=("B", "classes"), axes={"B": "batch", "classes": "class scores"})}


class TinyNet(nn.Module):
    def __init__(self, hidden: int, classes: int, bias: bool) -> None:
        super().__init__()
        self.hidden = nn.Linear(3, hidden, bias=bias)
        self.readout = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(torch.relu(self.hidden(x))).mean(1)


def _tiny_builder(hidden: int = 4) -> nn.Module:
    return TinyNet(hidden, 2, True)


@pytest.fixture
def tiny_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registers test models in an isolated copy of the registry."""
    monkeypatch.setattr(registry, "_MODELS", copy.deepcopy(registry._MODELS))

    def register(name: str):
        return zoo.register_model(
            name, family="test", paper="A test paper", citation="@misc{test}", inputs=SPEC_IN, outputs=SPEC_OUT
        )

    @register("test-tiny")
    def tiny(hidden: int = 4, classes: int = 5, bias: bool = True, scale: float = 1.0) -> nn.Module:
        return TinyNet(hidden, classes, bias)

    @register("test-tiny-wide")
    def tiny_wide(
        hidden: int = 16, classes: int = 5, mode: Literal["a", "b"] = "a", drop: float | None = None
    ) -> nn.Module:
        return TinyNet(hidden, classes, True)


def test_list_models_sorted_and_filtered(tiny_registry: None) -> None:
    names = zoo.list_models()
    assert names == sorted(names)
    assert {"test-tiny", "test-tiny-wide"} <= set(names)
    assert zoo.list_models("test-tiny*") == ["test-tiny", "test-tiny-wide"]
    assert zoo.list_models("*wide") == ["test-tiny-wide"]
    assert zoo.list_models("nothing-matches-*") == []


def test_build_uses_defaults_and_overrides(tiny_registry: None) -> None:
    model = zoo.build("test-tiny")
    assert model.hidden.out_features == 4 and model.readout.out_features == 5
    model = zoo.build("test-tiny", hidden=7, classes=2, bias=False, scale=2)
    assert model.hidden.out_features == 7 and model.readout.out_features == 2 and model.hidden.bias is None
    assert zoo.build("test-tiny")(torch.zeros(2, 6, 3)).shape == (2, 5)


def test_build_is_deterministic_given_the_seed(tiny_registry: None) -> None:
    torch.manual_seed(3)
    first = zoo.build("test-tiny").state_dict()
    torch.manual_seed(3)
    second = zoo.build("test-tiny").state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_model_info_reports_metadata_and_parameter_count(tiny_registry: None) -> None:
    info = zoo.model_info("test-tiny")
    assert info.family == "test" and info.paper == "A test paper" and info.citation == "@misc{test}"
    assert info.inputs["x"].shape == ("B", "T", 3) and info.inputs["x"].axes["T"] == "time steps"
    assert info.config == {"hidden": 4, "classes": 5, "bias": True, "scale": 1.0}
    assert info.num_params == sum(p.numel() for p in TinyNet(4, 5, True).parameters()) == 3 * 4 + 4 + 4 * 5 + 5
    assert info.to_dict()["inputs"]["x"]["axes"]["B"] == "batch"
    wide = zoo.model_info("test-tiny", hidden=7, bias=False)
    assert wide.config["hidden"] == 7 and wide.num_params == 3 * 7 + 7 * 5 + 5


def test_unknown_model_lists_close_names(tiny_registry: None) -> None:
    with pytest.raises(zoo.ConfigError, match="closest: test-tiny"):
        zoo.build("test-tiy")
    with pytest.raises(zoo.ConfigError, match="unknown model 'zzzz'; available: "):
        zoo.model_info("zzzz")


def test_unknown_override_names_the_valid_ones(tiny_registry: None) -> None:
    message = (
        r"test-tiny: unknown option 'hiden' \(did you mean hidden\?\); valid options: bias, classes, hidden, scale"
    )
    with pytest.raises(TypeError, match=message):
        zoo.build("test-tiny", hiden=3)


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("test-tiny", {"hidden": 2.5}),
        ("test-tiny", {"hidden": True}),
        ("test-tiny", {"bias": 1}),
        ("test-tiny", {"scale": "1"}),
        ("test-tiny-wide", {"mode": "c"}),
        ("test-tiny-wide", {"drop": "high"}),
    ],
)
def test_ill_typed_override_is_a_type_error(tiny_registry: None, name: str, overrides: dict) -> None:
    key = next(iter(overrides))
    with pytest.raises(TypeError, match=f"option '{key}' expects .*valid options"):
        zoo.build(name, **overrides)


def test_optional_and_literal_overrides_accept_valid_values(tiny_registry: None) -> None:
    assert zoo.resolve_config("test-tiny-wide", mode="b", drop=None)["mode"] == "b"
    assert zoo.resolve_config("test-tiny-wide", drop=0.5)["drop"] == 0.5


def test_duplicate_registration_and_bad_builders_are_rejected(tiny_registry: None) -> None:
    with pytest.raises(
        zoo.ConfigError, match=r"model 'test-tiny' is already registered \(by (tests\.)?test_registry\)"
    ):
        zoo.register_model("test-tiny", family="t", paper="", citation="", inputs=SPEC_IN, outputs=SPEC_OUT)(
            _tiny_builder
        )
    decorator = zoo.register_model("test-bad", family="t", paper="", citation="", inputs=SPEC_IN, outputs=SPEC_OUT)
    with pytest.raises(TypeError, match="needs a default"):

        def no_default(hidden: int) -> nn.Module:
            return TinyNet(hidden, 1, True)

        decorator(no_default)
    with pytest.raises(TypeError, match="needs a type hint"):
        decorator(lambda hidden=1: TinyNet(hidden, 1, True))


def test_tensor_spec_axes_explain_exactly_the_named_axes() -> None:
    with pytest.raises(ValueError, match=r"axes \['T'\]"):
        zoo.TensorSpec(shape=("B", "T"), axes={"B": "batch"})
    with pytest.raises(ValueError, match=r"explains \['T'\], not in shape \('B', 4\)"):
        zoo.TensorSpec(shape=("B", 4), axes={"B": "batch", "T": "time"})
    with pytest.raises(ValueError, match=r"`sizes` gives \['H'\]"):
        zoo.TensorSpec(shape=("B", 4), axes={"B": "batch"}, sizes={"H": 3})
    with pytest.raises(ValueError, match="not a torch dtype"):
        zoo.TensorSpec(shape=("B",), axes={"B": "batch"}, dtype="f32")
    with pytest.raises(ValueError, match="value_range .* needs an integer dtype"):
        zoo.TensorSpec(shape=("B",), axes={"B": "batch"}, value_range=(0, 1))
    with pytest.raises(ValueError, match="low <= high"):
        zoo.TensorSpec(shape=("B",), axes={"B": "batch"}, dtype="int64", value_range=(5, 4))


def test_inputs_and_outputs_must_be_named_specs(tiny_registry: None) -> None:
    spec = SPEC_IN["x"]
    with pytest.raises(TypeError, match="inputs must be a non-empty dict of TensorSpec"):
        zoo.register_model("test-old", family="t", paper="", citation="", inputs=spec, outputs=SPEC_OUT)
    with pytest.raises(TypeError, match=r"outputs\['not an id'\] must be a TensorSpec"):
        zoo.register_model("test-old", family="t", paper="", citation="", inputs=SPEC_IN, outputs={"not an id": spec})
    optional = {"y": zoo.TensorSpec(("B",), {"B": "batch"}, optional=True)}
    with pytest.raises(TypeError, match="outputs cannot be optional"):
        zoo.register_model("test-old", family="t", paper="", citation="", inputs=SPEC_IN, outputs=optional)


def test_small_config_is_checked_and_gives_inputs_from_the_specs(tiny_registry: None) -> None:
    lengths = zoo.TensorSpec(("B",), {"B": "batch"}, dtype="int64", optional=True)
    decorator = zoo.register_model(
        "test-small",
        family="t",
        paper="",
        citation="",
        inputs={**SPEC_IN, "lengths": lengths},
        outputs=SPEC_OUT,
        small=zoo.SmallConfig(overrides={"hidden": 2}, sizes={"T": 3}, values={"lengths": [3, 1]}),
    )
    with pytest.raises(TypeError, match="test-bad-small small config: option 'hidden' expects int"):
        zoo.register_model(
            "test-bad-small",
            family="t",
            paper="",
            citation="",
            inputs=SPEC_IN,
            outputs=SPEC_OUT,
            small=zoo.SmallConfig(overrides={"hidden": "2"}),
        )(_tiny_builder)
    decorator(_tiny_builder)
    inputs = registry.small_inputs("test-small", seed=1)
    assert inputs["x"].shape == (2, 3, 3) and inputs["x"].dtype == torch.float32
    assert inputs["lengths"].tolist() == [3, 1] and inputs["lengths"].dtype == torch.int64
    assert torch.equal(inputs["x"], registry.small_inputs("test-small", seed=1)["x"])
    assert not torch.equal(inputs["x"], registry.small_inputs("test-small", seed=2)["x"])
    assert "lengths" not in registry.small_inputs("test-tiny")


def test_every_registered_model_has_consistent_metadata() -> None:
    """Whatever families are installed: info is complete and builders accept their own defaults."""
    for name in zoo.list_models():
        info = zoo.model_info(name)
        assert info.paper and info.citation and info.family, name
        assert info.num_params > 0, name
        assert zoo.resolve_config(name, **info.config) == info.config
