"""StereoSpike recipe: loss terms, MDE / 1PA metrics, the paper preset, CLI training and evaluation on MVSEC files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from mvsec_files import write_synthetic_sequences

import zoo
from zoo.evaluate import main as evaluate_main
from zoo.train import get_recipe
from zoo.train.cli import main
from zoo.train.metrics import DISPARITY_CONSTANT, mean_depth_error, one_pixel_accuracy
from zoo.train.recipes.stereospike import depth_loss, gradient_matching_loss, scale_invariant_loss
from zoo.train.registries import higher_is_better

NAN = float("nan")


def test_scale_invariant_term_is_the_residual_variance_over_valid_pixels() -> None:
    torch.manual_seed(0)
    prediction = torch.rand(2, 1, 5, 6)
    target = torch.rand(2, 1, 5, 6) + 1
    target[0, 0, :2] = NAN
    valid = ~torch.isnan(target)
    residual = torch.where(valid, prediction - torch.nan_to_num(target), torch.zeros(()))
    values = (prediction - target)[valid]
    expected = values.square().mean() - values.mean().square()
    assert scale_invariant_loss(residual, valid) == pytest.approx(expected.item(), rel=1e-5)
    shifted = torch.where(valid, residual + 0.7, torch.zeros(()))
    assert scale_invariant_loss(shifted, valid) == pytest.approx(expected.item(), rel=1e-4)


def test_gradient_term_sees_only_edges_of_the_residual() -> None:
    valid = torch.ones(1, 1, 7, 7, dtype=torch.bool)
    flat = torch.full((1, 1, 7, 7), 0.5)
    interior = torch.zeros(1, 1, 7, 7, dtype=torch.bool)
    interior[..., 1:-1, 1:-1] = True
    assert gradient_matching_loss(flat, interior) == 0
    assert gradient_matching_loss(flat, valid) > 0  # zero padding: a constant offset shows at the border
    step = torch.zeros(1, 1, 7, 7)
    step[..., 4:] = 1.0
    per_pixel = (2 + 1 + 1) * 1.0  # |Sobel_x| of a unit step: 4 on the two columns beside it, inside rows
    assert gradient_matching_loss(step, interior) == pytest.approx(2 * 5 * per_pixel / 25)


def test_depth_loss_sums_all_four_outputs_and_the_spike_penalty() -> None:
    torch.manual_seed(0)
    model = zoo.build("stereospike", widths=(4, 8, 8, 8, 8))
    with torch.no_grad():
        for block in model.encoder:
            block.conv.weight.mul_(6)
    x = torch.poisson(torch.full((1, 1, 4, 12, 16), 1.0))
    output = model(x)
    target = torch.rand(1, 1, 12, 16) + 1
    target[..., :3, :3] = NAN
    base = depth_loss(output, target, model)
    final_only = depth_loss(output, target, model, output_weights=(0.0, 0.0, 0.0, 1.0))
    assert base > final_only > 0
    penalised = depth_loss(output, target, model, spike_penalty=0.5)
    assert penalised.item() == pytest.approx((base + 0.5 * zoo.spike_penalty(model)).item(), rel=1e-6)
    assert depth_loss(target.expand(1, 4, 12, 16), target, model) == 0
    with pytest.raises(ValueError, match="output_weights"):
        depth_loss(output, target, model, output_weights=(1.0, 1.0))


def test_mde_is_the_mean_over_frames_of_per_frame_errors_in_cm() -> None:
    target = torch.tensor([[[[1.0, 2.0], [NAN, 4.0]]], [[[NAN, NAN], [NAN, NAN]]], [[[2.0, NAN], [NAN, NAN]]]])
    final = torch.tensor([[[[1.5, 2.0], [9.0, 3.0]]], [[[1.0, 1.0], [1.0, 1.0]]], [[[1.0, 0.0], [0.0, 0.0]]]])
    output = torch.cat([torch.zeros_like(final).expand(3, 3, 2, 2), final], dim=1)
    total, count = mean_depth_error(output, target)
    assert count == 2  # the frame without ground truth is not counted
    assert total.item() == pytest.approx(100 * (1.5 / 3) + 100 * 1.0)
    assert not higher_is_better("mde") and higher_is_better("1pa")


def test_one_pixel_accuracy_in_disparity() -> None:
    depth = torch.tensor([[[[2.0, 4.0, NAN]]]])
    disparity = DISPARITY_CONSTANT / depth
    within = DISPARITY_CONSTANT / (disparity + 0.9)
    beyond = DISPARITY_CONSTANT / (disparity - 1.5)
    final = torch.stack([within[..., 0], beyond[..., 1], torch.tensor([[[5.0]]])], dim=-1)
    total, count = one_pixel_accuracy(torch.cat([final] * 4, dim=1), depth)
    assert count == 1 and total.item() == pytest.approx(50.0)


def test_paper_preset() -> None:
    recipe = get_recipe("stereospike-mvsec")
    assert (recipe.model, recipe.dataset, recipe.optimizer, recipe.lr, recipe.batch_size) == (
        "stereospike",
        "mvsec",
        "adam",
        2e-4,
        1,
    )
    assert recipe.loss == "stereospike" and recipe.selection_metric == "mde" and recipe.val_split == "val"
    assert (recipe.step_milestones, recipe.step_gamma, recipe.epochs) == ((8.0, 42.0, 60.0), 0.5, 70)
    monocular = get_recipe("stereospike-monocular-mvsec")
    assert monocular.model == "stereospike-monocular" and monocular.dataset_options["cameras"] == "left"
    assert recipe.dataset_options["window_alignment"] == monocular.dataset_options["window_alignment"] == "grid"
    variant = get_recipe("stereospike-mvsec-depth-aligned")
    assert variant.dataset_options == {**recipe.dataset_options, "window_alignment": "depth"}


def test_trains_through_the_cli_and_evaluates_mde(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = write_synthetic_sequences(tmp_path / "data", sensor=(6, 8))
    out = tmp_path / "run"
    argv = ["stereospike-mvsec", "--data", str(data), "--out", str(out), "--device", "cpu", "--workers", "0"]
    argv += ["--no-progress", "--no-tensorboard", "epochs=3", "lr=0.01", "model.widths=(4, 8, 8, 8, 8)"]
    assert main([*argv, "data.max_samples=4"]) == 0
    with open(out / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    losses = [float(row["train_loss"]) for row in rows]
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    assert all(float(row["val_mde"]) > 0 for row in rows)
    capsys.readouterr()
    assert evaluate_main(["--checkpoint", str(out / "best.pt"), "--data", str(data), "data.max_samples=3"]) == 0
    assert '"mde"' in capsys.readouterr().out
    report = json.loads((out / "best.test.json").read_text())
    assert report["metrics"]["mde"] > 0 and "skip_densities.3" in report["firing_rates"]
