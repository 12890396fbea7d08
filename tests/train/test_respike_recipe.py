"""ReSpike recipes: the reference's settings, the clip and video metrics, and a CLI training run on generated videos."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.datasets.video import write_video
from zoo.train import get_recipe
from zoo.train.cli import main
from zoo.train.recipes.respike import clip_accuracy, clip_cross_entropy, clip_top5, video_accuracy


@pytest.mark.parametrize(
    ("name", "classes", "stride", "batch"),
    [("respike-hmdb51", 51, 4, 32), ("respike-ucf101", 101, 4, 32), ("respike-kinetics400", 400, 2, 16)],
)
def test_recipes_carry_the_reference_settings(name, classes, stride, batch):
    recipe = get_recipe(name)
    assert recipe.model == "respike-resnet50"
    assert recipe.model_overrides == {"num_classes": classes, "key_frame_stride": stride, "downsample": True}
    assert (recipe.optimizer, recipe.optimizer_options, recipe.lr, recipe.weight_decay) == (
        "sgd",
        {"momentum": 0.9},
        1e-4,
        1e-4,
    )
    assert (recipe.schedule, recipe.schedule_unit, recipe.min_lr, recipe.epochs) == ("cosine", "epoch", 0.0, 100)
    assert recipe.batch_size == batch and recipe.amp and recipe.amp_dtype == "float16"
    assert recipe.val_split == "val" and recipe.selection_metric == "clip_accuracy"


def test_clip_and_video_metrics():
    logits = torch.tensor(
        [
            [3.0, 0.0, 1.0, 0.5, 0.2, 0.1],  # video 4, label 0: right
            [0.0, 2.0, 1.0, 0.5, 0.2, 0.1],  # video 4: wrong, but the video's mean still favours class 0
            [0.0, 1.0, 0.0, 0.5, 0.2, 3.0],  # video 9, label 1: wrong (class 5), label in the top 5
            [0.0, 0.0, 0.1, 0.5, 0.2, 3.0],  # video 9: wrong, label 1 is the lowest logit (not in the top 5)
        ]
    )
    target = {"label": torch.tensor([0, 0, 1, 1]), "video": torch.tensor([4, 4, 9, 9])}
    assert [int(v) for v in clip_accuracy(logits, target)] == [1, 4]
    assert [int(v) for v in clip_top5(logits, target)] == [3, 4]
    assert [int(v) for v in video_accuracy(logits, target)] == [1, 2]
    loss = clip_cross_entropy(logits, target, torch.nn.Identity())
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, target["label"]))


def write_two_class_hmdb(root: Path, per_class: int, frames: int = 16, size: int = 64) -> Path:
    """HMDB-51 layout with two actions that differ in colour and motion: a bright bar moving right on red ('push')
    or a dark bar moving left on blue ('wave'); fold-1 split: the first videos train, the last one tests."""
    rng = np.random.default_rng(0)
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for label, action in enumerate(("push", "wave")):
        lines = []
        for index in range(per_class):
            video = np.zeros((frames, size, size, 3), np.uint8)
            video[..., 0 if label == 0 else 2] = 160
            video += rng.integers(0, 30, video.shape, dtype=np.uint8)
            for t in range(frames):
                column = (4 * t) % size if label == 0 else size - 1 - (4 * t) % size
                video[t, :, max(column - 3, 0) : column + 3] = 250 if label == 0 else 10
            write_video(root / action / f"{action}_{index}.avi", video)
            lines.append(f"{action}_{index}.avi {2 if index == per_class - 1 else 1}")
        (splits / f"{action}_test_split1.txt").write_text("\n".join(lines) + "\n")
    return root


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    with open(run_dir / "metrics.csv", newline="") as file:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(file)]


def test_respike_resnet18_learns_two_generated_actions_through_the_cli(tmp_path: Path) -> None:
    root = write_two_class_hmdb(tmp_path / "hmdb51", per_class=3)
    out = tmp_path / "run"
    argv = ["respike-hmdb51", "--model", "respike-resnet18", "--data", str(root), "--out", str(out)]
    argv += ["--device", "cpu", "--workers", "0", "--no-progress", "--no-tensorboard", "--seed", "0"]
    argv += ["epochs=4", "batch_size=4", "lr=0.02", "eval_batch_size=2", "val_split=test", "data.validation=test"]
    argv += ["model.num_classes=2", "model.width_mult=2", "data.size=64", "data.frames_per_clip=8"]
    assert main(argv) == 0
    rows = read_metrics(out)
    assert len(rows) == 4
    train = [row["train_loss"] for row in rows]
    assert train[-1] < train[0], f"train losses {train}"
    assert {"test_clip_accuracy", "test_clip_top5", "test_video_accuracy"} <= set(rows[-1])
    assert rows[-1]["test_clip_top5"] == 1.0  # two classes: always in the top 5
