"""Dataset options: one vocabulary, checked at construction, listed (name, type, default, meaning) and kept in step
with the README table; the one hold-out rule; warnings given once across DataLoader workers and epochs."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader, Dataset

import zoo.datasets
from zoo.datasets import shd
from zoo.datasets.holdout import published_part, split_indices
from zoo.datasets.options import dataset_options, format_dataset_options, readme_table
from zoo.datasets.shd import write_spike_file

README = Path(__file__).resolve().parents[2] / "README.md"
DATASETS = [
    (name, value)
    for name in zoo.datasets.__all__
    if inspect.isclass(value := getattr(zoo.datasets, name)) and issubclass(value, Dataset)
]


def test_every_option_is_typed_defaulted_documented_and_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- dataset-options:begin -->\n(.*?)\n<!-- dataset-options:end -->", text, re.S)
    assert match, "README lacks the dataset option table between its markers"
    assert match.group(1) == readme_table(), (
        "README dataset option table differs from the code: paste the output of "
        "`python -c 'import zoo.datasets.options as o; print(o.readme_table())'`"
    )
    for _, dataset in DATASETS:
        assert [o.name for o in dataset_options(dataset)] == [
            p.name for p in inspect.signature(dataset.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY
        ]


def test_one_name_per_idea() -> None:
    names = {name: {o.name for o in dataset_options(dataset)} for name, dataset in DATASETS}
    retired = {"T", "num_steps", "max_time", "time_bins"}
    assert not retired & set().union(*names.values())
    assert {"num_bins"} <= names["DVSLip"] & names["SHD"] & names["SSC"] & names["MVSEC"]
    assert {"validation", "val_fraction", "val_seed"} <= names["DVSLip"] & names["SHD"] & names["HeidelbergDigits"]
    assert "window_s" in names["SHD"] & names["MVSEC"] and "cache_dir" in names["DVSLip"] & names["MVSEC"]
    listing = format_dataset_options(zoo.datasets.SHD)
    assert "num_bins: int = 100" in listing and "time bins" in listing


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"binning": "foo"}, TypeError, r"SHD: option 'binning' expects Literal\['sparch', 'uniform'\], got 'foo'"),
        ({"num_bins": "abc"}, TypeError, r"SHD: option 'num_bins' expects int, got 'abc'"),
        ({"num_steps": 100}, TypeError, r"SHD: unknown option 'num_steps'"),
        ({"window_s": -1.0}, ValueError, "finite window_s > 0"),
        ({"val_fraction": 1.5}, ValueError, r"val_fraction must lie in \(0, 1\)"),
        ({"validation": "dev"}, TypeError, "option 'validation' expects"),
    ],
)
def test_bad_options_fail_at_construction_before_any_sample_is_read(
    tmp_path: Path, options: dict, error: type, message: str
) -> None:
    """Before, binning='foo' passed construction (and --dry-run) and failed at the first sample."""
    write_spike_file(tmp_path / "shd_train.h5", [np.array([0.1])] * 4, [np.array([3])] * 4, np.array([0, 0, 1, 1]))
    with pytest.raises(error, match=message):
        zoo.datasets.SHD(tmp_path, "train", **options)


def test_options_are_converted_like_model_options(tmp_path: Path) -> None:
    write_spike_file(tmp_path / "shd_test.h5", [np.array([0.1])], [np.array([3])], np.array([0]))
    dataset = zoo.datasets.SHD(tmp_path, "test", window_s=2)
    assert isinstance(dataset.binning["window_s"], float)
    with pytest.raises(ValueError, match="split must be one of"):
        zoo.datasets.SHD(tmp_path, "dev")


def test_one_holdout_rule() -> None:
    labels = np.repeat(np.arange(4), 10)
    val = split_indices(labels, "val", validation="heldout", val_fraction=0.2, val_seed=3)
    train = split_indices(labels, "train", validation="heldout", val_fraction=0.2, val_seed=3)
    assert len(val) == 8 and np.bincount(labels[val]).tolist() == [2, 2, 2, 2]
    assert sorted([*val, *train]) == list(range(40))
    assert published_part("val", "heldout") == "train" and published_part("val", "test") == "test"
    assert split_indices(labels, "val", validation="test", val_fraction=0.2, val_seed=3).tolist() == list(range(40))


def test_dropped_spike_warning_is_given_once_across_workers_and_epochs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, each worker process of each epoch warned again. Warnings are logged to a file (forked workers
    inherit the patched `warnings.warn`)."""
    log = tmp_path / "warnings.log"

    def warn_to_file(message: str, *args: object, **kwargs: object) -> None:
        with open(log, "a") as file:
            file.write(f"{message}\n")

    monkeypatch.setattr(shd.warnings, "warn", warn_to_file)
    times = [np.array([0.1, 1.5])] * 8
    write_spike_file(tmp_path / "shd_test.h5", times, [np.array([1, 2])] * 8, np.arange(8) % 2)
    dataset = zoo.datasets.SHD(tmp_path, "test")
    for _ in range(2):
        for _ in DataLoader(dataset, batch_size=2, num_workers=2, multiprocessing_context="fork"):
            pass
    assert log.read_text().count("were dropped") == 1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.binning=foo", "option 'binning' expects Literal['sparch', 'uniform'], got 'foo'"),
        ("data.num_bins=abc", "option 'num_bins' expects int, got 'abc'"),
        ("data.num_steps=100", "unknown option 'num_steps' (did you mean num_bins?)"),
    ],
)
def test_dry_run_stops_on_a_bad_dataset_option(
    tmp_path: Path, capsys: pytest.CaptureFixture, override: str, message: str
) -> None:
    """Before, data.time_bins=foo passed --dry-run and failed at the first sample of the first epoch."""
    from zoo.train.cli import main

    labels = np.arange(40) % 20
    write_spike_file(tmp_path / "shd_train.h5", [np.array([0.1])] * 40, [np.array([3])] * 40, labels)
    write_spike_file(tmp_path / "shd_test.h5", [np.array([0.1])] * 4, [np.array([3])] * 4, np.arange(4))
    argv = ["sparch-shd", "--data", str(tmp_path), "--dry-run", "--device", "cpu", "--out", str(tmp_path / "run")]
    assert main([*argv, override]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
