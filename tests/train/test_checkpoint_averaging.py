"""`Recipe.average_last`: the weights of the last N epochs are kept and ``averaged.pt`` holds their mean."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import zoo
from zoo.errors import ConfigError
from zoo.evaluate import evaluate_checkpoint
from zoo.train import run
from zoo.train.checkpoint import average_checkpoints, load_checkpoint
from zoo.train.recipes.raven import RAVEN_RECIPES
from zoo.weights import read_checkpoint

OVERRIDES = ["epochs=4", "average_last=3", "model.norm=True", "model.dropout=0.3"]


def epoch_files(out: Path) -> list[str]:
    return sorted(path.name for path in out.glob("epoch-*.pt"))


def mean_by_hand(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Float tensors: float64 sum / count, cast back; integer tensors: sum // count."""
    mean = {}
    for key, value in states[0].items():
        if value.is_floating_point():
            total = torch.stack([state[key].double() for state in states]).sum(0)
            mean[key] = (total / len(states)).to(value.dtype)
        else:
            mean[key] = torch.stack([state[key] for state in states]).sum(0) // len(states)
    return mean


def test_averaged_checkpoint_is_the_mean_of_the_last_epochs(make_config, data_root: Path) -> None:
    result = run(make_config(overrides=OVERRIDES))
    assert epoch_files(result.out) == ["epoch-2.pt", "epoch-3.pt", "epoch-4.pt"]
    states = [torch.load(result.out / name, weights_only=True) for name in epoch_files(result.out)]
    for key, value in result.model.state_dict().items():
        assert torch.equal(states[-1][key], value), key
    assert [int(state["norm.num_batches_tracked"]) for state in states] == [8, 12, 16]

    expected = mean_by_hand(states)
    saved = load_checkpoint(result.averaged_checkpoint)
    assert saved["averaged"] == {"epochs": [2, 3, 4]} and saved["epoch"] == 4
    assert saved["metrics"] == {"val": result.averaged_metrics} and result.averaged_metrics.keys() >= {"loss"}
    assert result.averaged_metrics != result.history[-1]["metrics"]["val"]  # other weights, other results
    assert list(saved["model"]) == list(expected)
    for key, value in expected.items():
        assert saved["model"][key].dtype == value.dtype, key
        assert torch.equal(saved["model"][key], value), key
    assert not torch.equal(saved["model"]["encoder.weight"], states[-1]["encoder.weight"])

    model = zoo.load(result.averaged_checkpoint)
    for key, value in expected.items():
        assert torch.equal(model.state_dict()[key], value), key
    assert read_checkpoint(result.averaged_checkpoint).metrics["epoch"] == 4
    evaluated = evaluate_checkpoint(result.averaged_checkpoint, data_root, split="val", device="cpu")
    assert evaluated["num_samples"] == 30
    assert evaluated["metrics"] == pytest.approx(result.averaged_metrics, rel=1e-6)


def test_resumed_run_keeps_the_epoch_weights_and_averages_the_same(make_config) -> None:
    straight = run(make_config("straight", overrides=OVERRIDES))
    first = run(make_config("split", overrides=OVERRIDES, stop_after_epochs=2))
    assert epoch_files(first.out) == ["epoch-1.pt", "epoch-2.pt"]
    assert not first.averaged_checkpoint.exists()
    resumed = run(make_config("split", overrides=OVERRIDES, resume="auto"))
    assert epoch_files(resumed.out) == ["epoch-2.pt", "epoch-3.pt", "epoch-4.pt"]
    expected = load_checkpoint(straight.averaged_checkpoint)["model"]
    saved = load_checkpoint(resumed.averaged_checkpoint)["model"]
    for key, value in expected.items():
        assert torch.equal(saved[key], value), key


def test_a_run_shorter_than_average_last_averages_all_its_epochs(make_config) -> None:
    result = run(make_config(overrides=["epochs=2", "average_last=5"]))
    assert epoch_files(result.out) == ["epoch-1.pt", "epoch-2.pt"]
    states = [torch.load(result.out / name, weights_only=True) for name in epoch_files(result.out)]
    saved = load_checkpoint(result.averaged_checkpoint)
    assert saved["averaged"] == {"epochs": [1, 2]}
    for key, value in mean_by_hand(states).items():
        assert torch.equal(saved["model"][key], value), key


def test_without_average_last_no_epoch_weights_are_kept(make_config) -> None:
    result = run(make_config(overrides=["epochs=2"]))
    assert epoch_files(result.out) == [] and not result.averaged_checkpoint.exists()


def test_negative_average_last_is_a_config_error(make_config) -> None:
    with pytest.raises(ConfigError, match="average_last"):
        run(make_config(overrides=["average_last=-1"]))


def test_average_checkpoints_averages_floats_and_floor_divides_counters() -> None:
    states = [
        {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)},
        {"w": torch.tensor([2.0, 5.0]), "n": torch.tensor(4)},
    ]
    averaged = average_checkpoints(states)
    torch.testing.assert_close(averaged["w"], torch.tensor([1.5, 3.5]))
    assert averaged["n"].item() == 3 and averaged["n"].dtype == torch.int64
    with pytest.raises(ValueError, match="other keys"):
        average_checkpoints([states[0], {"w": torch.zeros(2)}])
    with pytest.raises(ValueError, match="at least one"):
        average_checkpoints([])


def test_raven_finetuning_recipes_average_the_last_ten_epochs() -> None:
    assert RAVEN_RECIPES and all(recipe.average_last == 10 for recipe in RAVEN_RECIPES)
