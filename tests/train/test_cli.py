"""`python -m zoo.train` and `python -m zoo.evaluate` command lines."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from zoo.evaluate import main as evaluate_main
from zoo.train.checkpoint import load_checkpoint
from zoo.train.cli import main
from zoo.train.config import DEFAULT_WORKERS

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


def test_print_config_shows_the_resolved_configuration_and_loads_nothing(tmp_path, capsys):
    out = tmp_path / "never"
    arguments = [tiny.RECIPE, "--plugin", str(PLUGIN), "lr=0.5", "metrics=accuracy,top5", "model.hidden=4"]
    assert main([*arguments, "--out", str(out), "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["recipe"]["lr"] == 0.5 and printed["recipe"]["metrics"] == ["accuracy", "top5"]
    assert printed["model"] == tiny.MODEL and printed["model_config"] == {"hidden": 4, "dropout": 0.0, "norm": False}
    assert printed["run"]["workers"] == DEFAULT_WORKERS and not out.exists()


def test_show_prints_the_recipe_model_dataset_loss_and_metrics(capsys):
    assert main(["show", tiny.RECIPE, "--plugin", str(PLUGIN)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"recipe {tiny.RECIPE}: engine test: tiny MLP on Gaussian blobs")
    assert f"model {tiny.MODEL} (test family" in text and "  hidden  = 16" in text
    assert f"dataset {tiny.DATASET} (" in text and "broken_index: int | None = None" in text
    assert "loss cross_entropy: Mean cross-entropy" in text and "label_smoothing: float = 0.0" in text
    assert "accuracy: Top-1 accuracy" in text and "(higher is better)" in text
    assert "\n  clamp_parameters: Call ``model.clamp_parameters()``" in text and "  lr = 0.02" in text
    assert main(["show", "test-engine-tiyn", "--plugin", str(PLUGIN)]) == 2
    assert "unknown recipe 'test-engine-tiyn'; closest: test-engine-tiny" in capsys.readouterr().err


def test_a_model_of_another_family_is_told_it_does_not_fit_the_preset(capsys):
    assert main(["sparch-shd", "--model", "spikgru", "--data", ".", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "model 'spikgru' does not fit recipe 'sparch-shd'" in err and "sets model options dataset='shd'" in err
    assert "recipes for the spikgru family: " in err and "spikgru2plus-dvslip" in err
    assert "unknown option 'dataset'" in err and len(err.strip().splitlines()) == 1


def test_runs_write_train_log_and_the_data_wait(data_root, tmp_path, capsys):
    out = tmp_path / "logged"
    arguments = [tiny.RECIPE, "--data", str(data_root), "epochs=1", "--out", str(out), "--device", "cpu"]
    assert main([*arguments, "--workers", "0", "--no-tensorboard"]) == 0
    console = capsys.readouterr().out
    log = (out / "train.log").read_text()
    parameters = sum(parameter.numel() for parameter in tiny.tiny_mlp().parameters())
    assert f"recipe {tiny.RECIPE}: model {tiny.MODEL} ({parameters} parameters)" in log and "epoch 1/1" in log
    assert "data wait" in console and "epoch 1/1" in console
    with (out / "metrics.csv").open() as file:
        row = next(csv.DictReader(file))
    assert 0.0 <= float(row["train_data_wait"]) <= 1.0 and 0.0 <= float(row["val_data_wait"]) <= 1.0


def test_help_with_a_recipe_adds_its_details(capsys):
    assert main([tiny.RECIPE, "--plugin", str(PLUGIN), "--help"]) == 0
    text = capsys.readouterr().out
    assert "recipes:" in text and "broken_index: int | None = None" in text and "loss cross_entropy" in text
