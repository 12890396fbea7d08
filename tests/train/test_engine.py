"""End-to-end runs of the tiny test recipe on CPU: training, hooks, logs, checkpoints, resume, evaluation."""

from __future__ import annotations

import csv
import json

import torch
import torch.nn.functional as F

from zoo.evaluate import evaluate_checkpoint
from zoo.evaluate import main as evaluate_main
from zoo.train import run
from zoo.train.checkpoint import load_checkpoint

from .conftest import tiny


def _val_tensors(data_root):
    tensors = torch.load(data_root / "val.pt", weights_only=True)
    return tensors["inputs"], tensors["targets"]


def test_tiny_recipe_trains_end_to_end(make_config, data_root):
    result = run(make_config(tensorboard=True))

    losses = [entry["metrics"]["train"]["loss"] for entry in result.history]
    assert len(losses) == 3 and result.epochs_completed == 3
    assert losses[-1] < 0.8 * losses[0]
    steps = 3 * (64 // 16)
    assert result.model.clamp_calls == steps
    assert bool(((result.model.leak >= 0) & (result.model.leak <= 1)).all())

    out = result.out
    with (out / "metrics.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"} <= set(rows[0])
    with (out / "firing_rates.csv").open() as file:
        firing_rows = list(csv.DictReader(file))
    assert {(row["split"], row["layer"]) for row in firing_rows} == {("train", "rate"), ("val", "rate")}
    assert any((out / "tensorboard").iterdir())
    assert json.loads((out / "config.json").read_text())["model"] == tiny.MODEL

    checkpoint = load_checkpoint(out / "last.pt")
    assert checkpoint["epoch"] == 3 and checkpoint["global_step"] == steps
    assert checkpoint["config"]["model_config"] == {"hidden": 16, "dropout": 0.0, "norm": False}
    assert {"python", "numpy", "torch"} <= set(checkpoint["rng"][0])
    for name, value in result.model.state_dict().items():
        assert torch.equal(checkpoint["model"][name], value)
    val_accuracies = [entry["metrics"]["val"]["accuracy"] for entry in result.history]
    best_epoch = val_accuracies.index(max(val_accuracies)) + 1
    assert result.best == {"metric": "accuracy", "value": max(val_accuracies), "epoch": best_epoch}
    assert load_checkpoint(out / "best.pt")["epoch"] == best_epoch


def test_epoch_metrics_and_firing_rates_equal_a_direct_computation(make_config, data_root):
    """Validation in batches of 16 over 30 samples (a partial last batch) equals one pass over the whole set."""
    result = run(make_config(epochs=1))
    inputs, targets = _val_tensors(data_root)
    model = result.model.eval()
    with torch.no_grad():
        logits = model(inputs)
        hidden = torch.relu(model.encoder(inputs)) * model.leak
    val = result.history[0]["metrics"]["val"]
    assert abs(val["loss"] - F.cross_entropy(logits, targets).item()) < 1e-6
    correct = int((logits.argmax(-1) == targets).sum())
    assert abs(val["accuracy"] - correct / 30) < 1e-12
    assert abs(result.history[0]["firing_rates"]["val"]["rate"] - hidden.abs().mean().item()) < 1e-6


def test_resume_continues_exactly(make_config):
    """2 epochs + 1 epoch after a resume give bit-identical weights (dropout exercises the saved RNG states)."""
    overrides = ["model.dropout=0.3", "epochs=3"]
    uninterrupted = run(make_config("straight", overrides=overrides))
    first = run(make_config("split", overrides=overrides, stop_after_epochs=2))
    assert first.epochs_completed == 2
    resumed = run(make_config("split", overrides=overrides, resume="auto"))

    assert resumed.epochs_completed == 3 and [entry["epoch"] for entry in resumed.history] == [3]
    for name, value in uninterrupted.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
    assert resumed.history[0]["metrics"] == uninterrupted.history[2]["metrics"]
    with (resumed.out / "metrics.csv").open() as file:
        assert [int(row["epoch"]) for row in csv.DictReader(file)] == [1, 2, 3]


def test_resuming_a_finished_run_trains_nothing(make_config):
    run(make_config(epochs=1))
    again = run(make_config(epochs=1, resume="auto"))
    assert again.epochs_completed == 1 and again.history == []


def test_models_without_hooks_and_validation_train(make_config):
    result = run(make_config(model=tiny.OTHER_MODEL, overrides={"val_split": None, "selection_metric": "loss"}))
    assert result.epochs_completed == 3
    assert set(result.history[0]["metrics"]) == {"train"}
    assert not (result.out / "best.pt").exists() and (result.out / "last.pt").exists()


def test_init_checkpoint_loads_weights(make_config):
    source = run(make_config("source", epochs=1))
    fresh = run(make_config("init", overrides={"init_checkpoint": str(source.last_checkpoint)}, dry_run=True))
    for name, value in source.model.state_dict().items():
        assert torch.equal(fresh.model.state_dict()[name], value)


def test_evaluate_reproduces_validation_and_writes_json(make_config, data_root, tmp_path):
    result = run(make_config(epochs=1))
    evaluated = evaluate_checkpoint(result.last_checkpoint, data_root, split="val", batch_size=16, device="cpu")
    assert evaluated["metrics"] == result.history[0]["metrics"]["val"]
    assert evaluated["num_samples"] == 30 and evaluated["model"] == tiny.MODEL

    out = tmp_path / "metrics.json"
    arguments = ["--checkpoint", str(result.last_checkpoint), "--data", str(data_root), "--device", "cpu"]
    assert evaluate_main([*arguments, "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["split"] == "test" and written["num_samples"] == 24
    assert set(written["metrics"]) == {"loss", "accuracy"} and set(written["firing_rates"]) == {"rate"}
