"""SHD / SSC: binning of spike trains, the published HDF5 layout, validation protocols and error messages."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from zoo.datasets import SHD, SSC
from zoo.datasets.shd import NUM_CHANNELS, bin_spikes, write_spike_file


def loop_binning(times: np.ndarray, units: np.ndarray, edges: np.ndarray, num_steps: int) -> np.ndarray:
    """Oracle: one spike at a time, sparch's rule (step = digitize(t, edges), counts summed, late spikes lost)."""
    frames = np.zeros((num_steps, NUM_CHANNELS), dtype=np.float32)
    for time, unit in zip(times, units, strict=True):
        step = int(np.digitize(time, edges))
        if step < num_steps:
            frames[step, unit] += 1
    return frames


def random_sample(rng: np.random.Generator, count: int, window_s: float = 1.2) -> tuple[np.ndarray, np.ndarray]:
    return np.sort(rng.uniform(0.0, window_s, count)), rng.integers(0, NUM_CHANNELS, count)


def make_files(root: Path, prefix: str, splits: dict[str, list[int]], seed: int = 0) -> dict[str, list]:
    """Write ``<prefix>_<split>.h5`` files with the given labels; returns the written spikes per split."""
    rng = np.random.default_rng(seed)
    written = {}
    num_classes = 20 if prefix == "shd" else 35
    for split, labels in splits.items():
        samples = [random_sample(rng, int(rng.integers(5, 60))) for _ in labels]
        write_spike_file(
            root / f"{prefix}_{split}.h5",
            [times for times, _ in samples],
            [units for _, units in samples],
            np.asarray(labels),
            class_names=[f"class-{index}" for index in range(num_classes)],
            speakers=np.zeros(len(labels)),
        )
        written[split] = samples
    return written


def test_sparch_binning_matches_a_spike_by_spike_oracle() -> None:
    rng = np.random.default_rng(1)
    times, units = random_sample(rng, 3000, window_s=1.6)
    frames, dropped = bin_spikes(times, units)
    expected = loop_binning(times, units, np.linspace(0, 1.4, 100), 100)
    assert frames.shape == (100, NUM_CHANNELS) and frames.dtype == torch.float32
    np.testing.assert_array_equal(frames.numpy(), expected)
    assert dropped == int((times >= 1.4).sum()) > 0


def test_sparch_binning_quirks_row_zero_empty_and_counts() -> None:
    times = np.array([0.0, 0.001, 0.3, 0.3, 1.39])
    units = np.array([5, 5, 7, 7, 699])
    frames, _ = bin_spikes(times, units)
    assert frames[0].sum() == 0, "sparch's digitize puts t=0 in step 1, so step 0 stays empty"
    assert frames[1, 5] == 2 and frames[99, 699] == 1
    assert frames.max() == 2, "two spikes of one channel in one step count 2"
    binary, _ = bin_spikes(times, units, values="binary")
    assert binary.max() == 1 and binary.sum() == 3


def test_uniform_binning_uses_every_step() -> None:
    times = np.array([0.0, 0.0139, 0.014, 1.3999])
    units = np.array([1, 2, 3, 4])
    frames, _ = bin_spikes(times, units, binning="uniform")
    assert frames[0, 1] == 1 and frames[0, 2] == 1 and frames[1, 3] == 1 and frames[99, 4] == 1
    coarse, _ = bin_spikes(times, units, num_bins=7, window_s=1.4, binning="uniform")
    assert coarse.shape == (7, NUM_CHANNELS) and coarse[0].sum() == 3 and coarse[6, 4] == 1


def test_out_of_window_spikes_are_dropped_clamped_or_refused() -> None:
    times, units = np.array([0.5, 1.4, 2.0]), np.array([0, 1, 2])
    dropped, count = bin_spikes(times, units)
    assert count == 2 and dropped.sum() == 1
    clamped, count = bin_spikes(times, units, out_of_window="last_step")
    assert count == 0 and clamped[99, 1] == 1 and clamped[99, 2] == 1
    with pytest.raises(ValueError, match="2 spikes at or after window_s=1.4"):
        bin_spikes(times, units, out_of_window="error")


def test_bad_spikes_are_refused() -> None:
    with pytest.raises(ValueError, match="0..699"):
        bin_spikes(np.array([0.1, 0.2]), np.array([3, 700]))
    with pytest.raises(ValueError, match=">= 0 seconds"):
        bin_spikes(np.array([-0.1]), np.array([3]))
    with pytest.raises(ValueError, match="equal length"):
        bin_spikes(np.array([0.1, 0.2]), np.array([3]))


def test_shd_items_from_published_layout(tmp_path: Path) -> None:
    written = make_files(tmp_path, "shd", {"train": [i % 20 for i in range(40)], "test": [3, 19, 0]})
    test = SHD(tmp_path, "test")
    assert len(test) == 3
    frames, label = test[1]
    assert frames.shape == (100, NUM_CHANNELS) and label.dtype == torch.int64 and int(label) == 19
    times, units = written["test"][1]
    expected = loop_binning(times.astype(np.float16), units, np.linspace(0, 1.4, 100), 100)
    np.testing.assert_array_equal(frames.numpy(), expected)
    batch, labels = next(iter(DataLoader(test, batch_size=3)))
    assert batch.shape == (3, 100, NUM_CHANNELS) and labels.tolist() == [3, 19, 0]


def test_shd_reads_float64_times_and_options(tmp_path: Path) -> None:
    times, units = [np.array([0.25, 0.25, 0.9])], [np.array([10, 10, 699])]
    write_spike_file(tmp_path / "shd_test.h5", times, units, np.array([4]), times_dtype=np.float64)
    frames, _ = SHD(tmp_path, "test", num_bins=14, window_s=1.4, binning="uniform", values="binary")[0]
    assert frames.shape == (14, NUM_CHANNELS) and frames[2, 10] == 1 and frames[9, 699] == 1 and frames.sum() == 2


def test_shd_heldout_validation_is_seeded_disjoint_and_stratified(tmp_path: Path) -> None:
    labels = [i % 20 for i in range(200)]
    make_files(tmp_path, "shd", {"train": labels, "test": [0, 1]})
    train, val = SHD(tmp_path, "train"), SHD(tmp_path, "val")
    assert len(val) == 20 and len(train) == 180
    assert set(train.indices).isdisjoint(val.indices) and len(set(train.indices) | set(val.indices)) == 200
    assert sorted(val.labels.tolist()) == list(range(20)), "10% of every class"
    np.testing.assert_array_equal(SHD(tmp_path, "val").indices, val.indices)
    other = SHD(tmp_path, "val", val_seed=1)
    assert not np.array_equal(other.indices, val.indices)
    assert len(SHD(tmp_path, "val", val_fraction=0.3)) == 60


def test_shd_original_protocol_validates_on_test(tmp_path: Path) -> None:
    make_files(tmp_path, "shd", {"train": [i % 20 for i in range(40)], "test": [5, 6, 7]})
    val = SHD(tmp_path, "val", validation="test")
    assert val.file.path.name == "shd_test.h5" and val.labels.tolist() == [5, 6, 7]
    assert len(SHD(tmp_path, "train", validation="test")) == 40


def test_ssc_splits_read_their_files(tmp_path: Path) -> None:
    make_files(tmp_path, "ssc", {"train": [34, 0, 1], "valid": [20, 21], "test": [7]})
    assert SSC(tmp_path, "val").labels.tolist() == [20, 21]
    assert SSC(tmp_path, "train").labels.tolist() == [34, 0, 1]
    frames, label = SSC(tmp_path, "test")[0]
    assert frames.shape == (100, NUM_CHANNELS) and int(label) == 7


def test_ssc_file_passed_as_shd_is_refused(tmp_path: Path) -> None:
    make_files(tmp_path, "ssc", {"train": [30, 1]})
    (tmp_path / "ssc_train.h5").rename(tmp_path / "shd_train.h5")
    with pytest.raises(ValueError, match="35 classes in extra/keys but SHD has 20"):
        SHD(tmp_path, "train")
    with h5py.File(tmp_path / "shd_train.h5", "a") as file:
        del file["extra/keys"]
    with pytest.raises(ValueError, match=r"labels in 1..30 but SHD has 20 classes"):
        SHD(tmp_path, "train")


def test_missing_file_key_and_corrupt_file_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="shd_test.h5"):
        SHD(tmp_path, "test")
    make_files(tmp_path, "shd", {"test": [1, 2]})
    with h5py.File(tmp_path / "shd_test.h5", "a") as file:
        del file["spikes/units"]
    with pytest.raises(KeyError, match="lacks HDF5 key.*spikes/units"):
        SHD(tmp_path, "test")
    (tmp_path / "ssc_test.h5").write_bytes(b"not an hdf5 file")
    with pytest.raises(OSError, match="ssc_test.h5"):
        SSC(tmp_path, "test")


def test_units_outside_range_name_file_and_sample(tmp_path: Path) -> None:
    write_spike_file(tmp_path / "shd_test.h5", [np.array([0.1]), np.array([0.2])], [[1], [700]], np.array([0, 1]))
    dataset = SHD(tmp_path, "test")
    dataset[0]
    with pytest.raises(ValueError, match=r"shd_test.h5, sample 1: spike units must lie in 0..699"):
        dataset[1]


def test_dropped_spikes_warn_once(tmp_path: Path) -> None:
    write_spike_file(tmp_path / "shd_test.h5", [np.array([0.1, 1.5])] * 2, [np.array([1, 2])] * 2, np.array([0, 1]))
    dataset = SHD(tmp_path, "test")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset[0], dataset[1]
    assert len(caught) == 1 and "1 spikes at or after window_s=1.4 s were dropped" in str(caught[0].message)
    with pytest.raises(ValueError, match="at or after window_s"):
        SHD(tmp_path, "test", out_of_window="error")[0]


def test_dataset_pickles_for_worker_processes(tmp_path: Path) -> None:
    make_files(tmp_path, "shd", {"test": [1, 2]})
    dataset = SHD(tmp_path, "test")
    first = dataset[0][0]
    copy = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(copy[0][0], first)


def test_non_finite_and_millisecond_spike_times_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="spike times must be finite seconds, got 1 non-finite"):
        bin_spikes(np.array([0.1, np.nan]), np.array([3, 4]))
    write_spike_file(tmp_path / "shd_test.h5", [np.array([120.0, 800.0])], [np.array([1, 2])], np.array([0]))
    with pytest.raises(ValueError, match=r"shd_test.h5, sample 0: all 2 spikes lie at or after window_s=1.4 s .*milli"):
        SHD(tmp_path, "test")[0]
