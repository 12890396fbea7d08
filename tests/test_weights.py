"""Checkpoints: `zoo.build(..., checkpoint=)` (whole and partial), `zoo.load`, `python -m zoo export`."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import zoo
from zoo import registry
from zoo.__main__ import main
from zoo.train import RunConfig, load_plugin, run
from zoo.weights import read_checkpoint

PLUGIN = Path(__file__).parent / "train" / "tiny_plugin.py"
SPEC = {"x": zoo.TensorSpec(shape=("B", 4), axes={"B": "batch"})}


class Branches(nn.Module):
    """Two sub-modules, like ReSpike's ANN and SNN branches."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.ann = nn.Sequential(nn.Linear(4, width), nn.BatchNorm1d(width))
        self.snn = nn.Linear(4, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ann(x) + self.snn(x)


@pytest.fixture
def branches(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(registry, "_MODELS", copy.deepcopy(registry._MODELS))

    @zoo.register_model("test-branches", family="test", paper="p", citation="c", inputs=SPEC, outputs=SPEC)
    def build_branches(width: int = 3) -> nn.Module:
        return Branches(width)

    return "test-branches"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-epoch ``zoo.train`` run of the engine tests' tiny MLP (run directory)."""
    tiny = load_plugin(str(PLUGIN))
    root = tmp_path_factory.mktemp("weights")
    data = tiny.write_blobs(root / "data", {"train": 32, "val": 16})
    config = RunConfig(
        recipe=tiny.RECIPE,
        data=data,
        out=root / "run",
        device="cpu",
        workers=0,
        progress=False,
        tensorboard=False,
        overrides={"epochs": 1, "model.hidden": 5},
    )
    run(config)
    return root / "run"


def _same_weights(first: nn.Module, second: nn.Module) -> bool:
    a, b = first.state_dict(), second.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_load_returns_the_trained_model_from_a_run_directory_or_checkpoint(trained_run: Path) -> None:
    saved = torch.load(trained_run / "best.pt", weights_only=True)
    model = zoo.load(trained_run)
    assert not model.training and model.encoder.out_features == 5
    assert all(torch.equal(model.state_dict()[key], value) for key, value in saved["model"].items())
    assert _same_weights(model, zoo.load(trained_run / "best.pt"))
    assert not _same_weights(model, zoo.build(saved["config"]["model"], hidden=5))


def test_export_round_trip(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "export"
    assert main(["export", str(trained_run / "last.pt"), str(out)]) == 0
    assert sorted(path.name for path in out.iterdir()) == ["config.json", "model.safetensors"]
    described = json.loads((out / "config.json").read_text())
    saved = torch.load(trained_run / "last.pt", weights_only=True)
    assert described["model"] == saved["config"]["model"] and described["model_config"]["hidden"] == 5
    assert described["recipe"]["name"] == saved["config"]["recipe"]["name"]
    assert described["overrides"] == saved["config"]["overrides"]
    assert described["metrics"]["best"] == saved["best"] and described["metrics"]["epoch"] == saved["epoch"]
    exported = zoo.load(out)
    assert _same_weights(exported, zoo.load(trained_run / "last.pt"))
    rebuilt = zoo.build(described["model"], checkpoint=out, hidden=5)
    assert _same_weights(rebuilt, exported)
    assert _same_weights(zoo.build(described["model"], checkpoint=out / "model.safetensors", hidden=5), exported)
    assert main(["export", str(trained_run / "last.pt"), str(out)]) == 2
    assert "already holds an export" in capsys.readouterr().err
    assert main(["export", str(trained_run / "last.pt"), str(out), "--overwrite"]) == 0


def test_build_refuses_a_checkpoint_of_another_model_or_config(trained_run: Path, branches: str) -> None:
    name = read_checkpoint(trained_run).model
    with pytest.raises(ValueError, match=r"saved with hidden=5 \(asked 16\); pass those options or use zoo.load"):
        zoo.build(name, checkpoint=trained_run)
    with pytest.raises(ValueError, match=f"holds model '{name}', not 'test-branches'"):
        zoo.build(branches, checkpoint=trained_run)
    with pytest.raises(FileNotFoundError, match="holds no weights: expected model.safetensors"):
        zoo.build(branches, checkpoint=trained_run.parent / "data")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        zoo.build(branches, checkpoint=trained_run / "nothing.pt")


def test_partial_load_into_a_sub_module(branches: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    source[1].running_mean.fill_(0.5)
    torch.save(source.state_dict(), tmp_path / "ann.pth")
    torch.manual_seed(1)
    fresh = zoo.build(branches)
    torch.manual_seed(1)
    model = zoo.build(branches, checkpoint={"ann.": tmp_path / "ann.pth"})
    assert _same_weights(model.ann, source)
    assert _same_weights(model.snn, fresh.snn)
    assert not _same_weights(model.ann, fresh.ann)
    assert _same_weights(zoo.build(branches, checkpoint={"ann": tmp_path / "ann.pth"}).ann, source)


def test_partial_load_reports_missing_unexpected_and_mis_shaped_keys(branches: str, tmp_path: Path) -> None:
    state = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).state_dict()
    del state["1.running_var"]
    state["2.weight"] = torch.zeros(1)
    state["0.bias"] = torch.zeros(7)
    torch.save(state, tmp_path / "bad.pth")
    message = (
        r"'.*bad.pth' \(into 'ann.'\) does not match the model; missing keys: \['1.running_var'\]; unexpected keys: "
        r"\['2.weight'\]; shapes differ \(checkpoint vs model\): \['0.bias: \(7,\) vs \(3,\)'\]"
    )
    with pytest.raises(ValueError, match=message):
        zoo.build(branches, checkpoint={"ann.": tmp_path / "bad.pth"})
    with pytest.raises(ValueError, match=r"prefix 'cnn.' names no sub-module; top-level ones: \['ann', 'snn'\]"):
        zoo.build(branches, checkpoint={"cnn.": tmp_path / "bad.pth"})


def test_plain_state_dicts_load_whole_but_cannot_be_loaded_by_name(branches: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    original = zoo.build(branches)
    torch.save(original.state_dict(), tmp_path / "plain.pt")
    assert _same_weights(zoo.build(branches, checkpoint=tmp_path / "plain.pt"), original)
    with pytest.raises(ValueError, match="names no model"):
        zoo.load(tmp_path / "plain.pt")
    torch.save({"weights": [1, 2]}, tmp_path / "other.pt")
    with pytest.raises(
        ValueError, match=r"neither a zoo.train checkpoint nor a state dict of tensors; .*\['weights'\]"
    ):
        zoo.build(branches, checkpoint=tmp_path / "other.pt")
