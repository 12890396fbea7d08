"""raven-spiking-dvslip's recipe: SpikGRU's DVS-Lip protocol by reference, and a CLI run on a toy DVS-Lip folder."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

import zoo
from zoo.layers.spike_record import SpikeRecord
from zoo.train import get_recipe
from zoo.train.cli import main
from zoo.train.recipes.spikgru import SPIKGRU_DVSLIP

from .test_spikgru_recipe import read_metrics, write_toy_dvslip


def test_raven_spiking_learns_a_separable_toy_set_through_the_cli(tmp_path: Path) -> None:
    root = write_toy_dvslip(tmp_path / "dvslip")
    out = tmp_path / "run"
    argv = ["raven-spiking-dvslip", "--data", str(root), "--out", str(out), "--device", "cpu", "--workers", "0"]
    argv += ["--no-progress", "--no-tensorboard", "--seed", "0"]
    argv += ["epochs=6", "batch_size=2", "lr=2e-3", "warmup_epochs=0", "val_split=test", "data.validation=test"]
    argv += ["model.num_classes=2", "model.dim=32", "model.heads=2", "model.ffn=64", "model.blocks=1"]
    argv += ["model.dropout=0.0", "model.drop_path=0.0", "data.num_bins=2"]
    argv += ["train_data.augment_temporal=False", "train_data.augment_spatial=False"]
    assert main(argv) == 0
    rows = read_metrics(out)
    assert len(rows) == 6
    train = [row["train_loss"] for row in rows]
    test = [row["test_loss"] for row in rows]
    assert train[-1] < train[0] and sum(train[-2:]) < sum(train[:2]), f"train losses {train}"
    assert test[-1] < test[0], f"test losses {test}"
    with open(out / "firing_rates.csv", newline="") as file:
        logged = {row["layer"] for row in csv.DictReader(file)}
    with torch.device("meta"):
        model = zoo.build("raven-spiking-dvslip")
    records = {name for name, module in model.named_modules() if isinstance(module, SpikeRecord)}
    assert logged == records and len(records) == 19, logged


def test_recipe_keeps_spikgrus_data_protocol_and_ravens_optimiser() -> None:
    recipe = get_recipe("raven-spiking-dvslip")
    assert recipe.model == "raven-spiking-dvslip"
    for key in ("dataset", "dataset_options", "train_options", "batch_size", "epochs", "warmup_epochs", "amp", "loss"):
        assert getattr(recipe, key) == SPIKGRU_DVSLIP[key], key
    assert (recipe.optimizer, recipe.optimizer_options, recipe.grad_clip) == ("adamw", {"betas": (0.9, 0.98)}, 5.0)
    assert (recipe.schedule, recipe.lr, recipe.min_lr, recipe.weight_decay) == ("cosine", 3e-4, 5e-6, 0.04)
    with torch.device("meta"):
        model = zoo.build(recipe.model)
    decayed = [name for name, _ in model.named_parameters() if not any(s in name for s in recipe.no_weight_decay)]
    assert decayed and all(name.endswith(".weight") for name in decayed), decayed
    kinds = {type(module).__name__ for name, module in model.named_modules() if f"{name}.weight" in decayed}
    assert kinds == {"Conv2d", "Conv3d", "Linear"}, kinds
