"""`python -m zoo.train` and `python -m zoo.evaluate` command lines."""

from __future__ import annotations

import pytest
import torch

from zoo.evaluate import main as evaluate_main
from zoo.train.checkpoint import load_checkpoint
from zoo.train.cli import main

from .conftest import PLUGIN, tiny


def test_help_lists_recipes_and_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--plugin", str(PLUGIN), "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert tiny.RECIPE in text and "engine test: tiny MLP" in text
    for option in ("--data", "--model", "--resume", "--deterministic", "model.<option>=value", "warmup_epochs"):
        assert option in text


def test_cli_trains_with_intermixed_overrides(data_root, tmp_path, capsys):
    out = tmp_path / "cli"
    arguments = [tiny.RECIPE, "--data", str(data_root), "epochs=1", "--out", str(out), "model.hidden=8"]
    status = main([*arguments, "--device", "cpu", "--workers", "0", "--no-tensorboard", "--deterministic"])
    assert status == 0
    assert not torch.are_deterministic_algorithms_enabled(), "--deterministic must not outlive the run"
    checkpoint = load_checkpoint(out / "last.pt")
    assert checkpoint["config"]["model_config"]["hidden"] == 8 and checkpoint["config"]["recipe"]["epochs"] == 1
    assert checkpoint["config"]["overrides"] == {"epochs": 1, "model.hidden": 8}
    assert "epoch 1/1" in capsys.readouterr().out


def test_cli_reports_configuration_errors(data_root, tmp_path, capsys):
    status = main(["test-engine-tiyn", "--data", str(data_root), "--out", str(tmp_path / "x"), "--device", "cpu"])
    assert status == 2
    assert "error: unknown recipe 'test-engine-tiyn'; closest: test-engine-tiny" in capsys.readouterr().err
    assert evaluate_main(["--checkpoint", str(tmp_path / "none.pt"), "--data", str(data_root)]) == 2
    assert "none.pt' does not exist" in capsys.readouterr().err
    assert main([tiny.RECIPE, "--data", str(data_root), "--resume", "epochs=3"]) == 2
    assert "--resume took the override 'epochs=3'" in capsys.readouterr().err


def test_dry_run_checks_and_stops(data_root, tmp_path, capsys):
    out = tmp_path / "dry"
    assert (
        main(
            [tiny.RECIPE, "--data", str(data_root), "--out", str(out), "--device", "cpu", "--workers", "0", "--dry-run"]
        )
        == 0
    )
    assert "configuration OK" in capsys.readouterr().out and not out.exists()
