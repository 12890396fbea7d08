"""SpikGRU DVS-Lip recipes: paper settings, the spike-loss term, and a CLI training run on a toy DVS-Lip folder."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.datasets.dvslip import write_events
from zoo.train import get_recipe
from zoo.train.cli import main
from zoo.train.recipes.spikgru import spikgru_loss

TOY_WORDS = ("accused", "action")  # labels 0 and 1


def write_toy_dvslip(root: Path, train_per_word: int = 2, test_per_word: int = 2) -> Path:
    """Separable words: 'accused' = ON events in rows 30..59, 'action' = OFF events in rows 68..97 (20000 each)."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train_per_word), ("test", test_per_word)):
        for label, word in enumerate(TOY_WORDS):
            rows = (30, 60) if label == 0 else (68, 98)
            for index in range(count):
                events = 20000
                write_events(
                    root / split / word / f"{index}.npy",
                    np.sort(rng.uniform(0, 1.2e6, events)),
                    rng.integers(30, 98, events),
                    rng.integers(*rows, events),
                    np.full(events, 1 - label),
                )
    return root


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    with open(run_dir / "metrics.csv", newline="") as file:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(file)]


@pytest.mark.slow
def test_spikgru2plus_learns_a_separable_toy_set_through_the_cli(tmp_path: Path) -> None:
    root = write_toy_dvslip(tmp_path / "dvslip")
    out = tmp_path / "run"
    argv = ["spikgru2plus-dvslip", "--data", str(root), "--out", str(out), "--device", "cpu", "--workers", "0"]
    argv += ["--no-progress", "--no-tensorboard", "--seed", "0"]
    argv += ["epochs=12", "batch_size=4", "lr=3e-3", "warmup_epochs=0", "val_split=test", "data.validation=test"]
    argv += ["model.hidden_size=16", "model.num_classes=2", "data.num_bins=4", "train_data.augment_temporal=False"]
    assert main(argv) == 0
    rows = read_metrics(out)
    assert len(rows) == 12
    train = [row["train_loss"] for row in rows]
    test = [row["test_loss"] for row in rows]
    assert sum(train[-3:]) < sum(train[:3]), f"train losses {train}"
    assert test[-1] < test[0], f"test losses {test}"
    assert rows[-1]["test_accuracy"] > 0.5, rows[-1]
    assert (out / "firing_rates.csv").is_file()


def test_recipes_follow_the_paper() -> None:
    stage1 = get_recipe("spikgru2plus-dvslip")
    assert (stage1.model, stage1.dataset, stage1.optimizer, stage1.lr, stage1.schedule) == (
        "spikgru2plus",
        "dvslip",
        "adam",
        3e-4,
        "constant",
    )
    assert (stage1.warmup_epochs, stage1.weight_decay, stage1.no_weight_decay) == (1.0, 1e-4, ("bn",))
    assert (stage1.batch_size, stage1.epochs, stage1.amp, stage1.dataset_options) == (32, 100, False, {"num_bins": 90})
    assert stage1.train_options == {"augment_spatial": True, "augment_temporal": True}
    assert stage1.loss_options == {} and stage1.val_split == "val"
    stage2 = get_recipe("spikgru2plus-dvslip-finetune")
    assert (stage2.lr, stage2.schedule, stage2.min_lr, stage2.epochs) == (1e-4, "cosine", 5e-6, 100)
    assert stage2.loss_options == {"actreg": 5.0}
    with torch.device("meta"):
        model = zoo.build(stage1.model)
    no_decay = [name for name, _ in model.named_parameters() if any(s in name for s in stage1.no_weight_decay)]
    assert len(no_decay) == 2 * (1 + 8 * 2 + 3)  # weight and bias of every BatchNorm, nothing else
    assert all(".bn" in name or "shortcut_bn" in name for name in no_decay)


def test_spikgru_loss_adds_the_weighted_spike_loss() -> None:
    torch.manual_seed(0)
    model = zoo.build("spikgru2plus", hidden_size=8).eval()
    events = torch.poisson(torch.full((1, 3, 2, 88, 88), 0.5))
    logits = model(events)
    target = torch.tensor([4])
    plain = spikgru_loss(logits, target, model)
    torch.testing.assert_close(plain, F.cross_entropy(logits, target))
    regularised = spikgru_loss(logits, target, model, actreg=5.0)
    torch.testing.assert_close(regularised, plain + 5.0 * zoo.spike_penalty(model))
    weighted = spikgru_loss(logits, target, model, actreg=5.0, weighting="synapses")
    torch.testing.assert_close(weighted, plain + 5.0 * zoo.spike_penalty(model, "synapses"))
