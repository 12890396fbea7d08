"""zoo.datasets.DVSLip on tiny files in the published layout (<root>/{train,test}/<word>/<n>.npy)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.datasets import DVSLip
from zoo.datasets.dvslip import WORDS, bin_events, cutout, read_events, time_mask, write_events, zoom


def random_events(rng: np.random.Generator, count: int, low: int = 0, high: int = 128, duration: float = 1.3e6):
    """`count` events with sorted timestamps over `duration` us in the square [low, high)^2."""
    return (
        np.sort(rng.uniform(0, duration, count)).astype(np.int64),
        rng.integers(low, high, count),
        rng.integers(low, high, count),
        rng.integers(0, 2, count),
    )


def make_root(tmp_path: Path, words: dict[str, int], test_per_word: int = 1, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, per_word in (("train", words), ("test", dict.fromkeys(words, test_per_word))):
        for word, count in per_word.items():
            for index in range(count):
                write_events(tmp_path / split / word / f"{index}.npy", *random_events(rng, 300))
    return tmp_path


def test_binning_counts_events_per_rounded_bin_pixel_and_polarity(tmp_path: Path) -> None:
    width = 40000.0  # T = 30
    t = np.array([0, 19999, 20000, 60000, 60000, 1_179_999, 1_180_000, 5_000_000])
    x = np.array([5, 6, 6, 127, 127, 0, 0, 9])
    y = np.array([7, 8, 8, 0, 0, 127, 127, 9])
    p = np.array([1, 0, 1, 1, 1, 0, 0, 1])
    path = write_events(tmp_path / "e.npy", t, x, y, p)
    counts = bin_events(read_events(path), 30)
    expected = np.zeros((30, 2, 128, 128), dtype=np.int32)
    for time, column, row, polarity in zip(t, x, y, p, strict=True):
        index = round(time / width)  # Python rounds half to even like numpy
        if index < 30:
            expected[index, 0 if polarity else 1, row, column] += 1
    np.testing.assert_array_equal(counts, expected)
    assert counts.sum() == 6  # 1_180_000 / 40000 = 29.5 rounds to 30 and is left out like 5 s
    assert counts[2, 0, 0, 127] == 2 and counts[0, 1, 8, 6] == 1 and counts[0, 0, 8, 6] == 1  # 1.5 -> 2, 0.5 -> 0


def test_items_are_signed_counts_center_cropped_for_test(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"accused": 2, "young": 2})
    dataset = DVSLip(root, "test", num_bins=12)
    assert len(dataset) == 2 and dataset.labels.tolist() == [WORDS.index("accused"), WORDS.index("young")] == [0, 99]
    frames, label = dataset[1]
    counts = bin_events(read_events(root / "test" / "young" / "0.npy"), 12)
    assert frames.shape == (12, 2, 88, 88) and frames.dtype == torch.float32
    assert label.dtype == torch.int64 and label.shape == () and int(label) == 99, "labels are int64 like every loader"
    expected = torch.from_numpy(counts[:, :, 20:108, 20:108].astype(np.float32))
    torch.testing.assert_close(frames[:, 0], expected[:, 0], rtol=0, atol=0)
    torch.testing.assert_close(frames[:, 1], -expected[:, 1], rtol=0, atol=0)


def test_train_items_are_one_random_88_crop_of_the_centre_96_possibly_flipped(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"action": 1})
    dataset = DVSLip(root, "train", num_bins=8, validation="test")
    counts = bin_events(read_events(dataset.files[0]), 8)
    signed = torch.from_numpy(np.stack([counts[:, 0], -counts[:, 1]], axis=1).astype(np.float32))
    candidates = [
        crop.flip(-1) if flip else crop
        for top in range(9)
        for left in range(9)
        for flip in (False, True)
        for crop in [signed[:, :, 16 + top : 104 + top, 16 + left : 104 + left]]
    ]
    torch.manual_seed(0)
    for _ in range(4):
        frames, _ = dataset[0]
        assert any(torch.equal(frames, candidate) for candidate in candidates)


def test_augmentations_keep_shapes_and_follow_their_rules() -> None:
    torch.manual_seed(0)
    ones = torch.ones(10, 2, 88, 88)
    holes = cutout(ones)
    assert torch.equal(holes[0], holes[-1]) and torch.equal(holes[:, 0], holes[:, 1])
    assert 0 < (holes == 0).sum() <= 10 * 2 * 4 * 18 * 18
    for _ in range(6):
        zoomed = zoom(ones)
        assert zoomed.shape == ones.shape and zoomed.min() >= 0 and zoomed.max() <= 1 + 1e-6
        torch.testing.assert_close(zoomed[:, :, 40:48, 40:48], torch.ones(10, 2, 8, 8))
    masked = time_mask(ones, count=6, max_length=4)
    zeroed = (masked == 0).flatten(1).all(1)
    assert zeroed.sum() <= 6 * 3 and torch.equal(masked[~zeroed], ones[~zeroed])


def test_augmented_train_items_and_mask_defaults(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"allow": 1})
    assert DVSLip(root, "train", num_bins=90, augment_temporal=True, validation="test").mask_max_length == 18
    assert DVSLip(root, "train", num_bins=30, augment_temporal=True, validation="test").mask_max_length == 6
    augmented = DVSLip(root, "train", num_bins=10, augment_spatial=True, augment_temporal=True, validation="test")
    frames, _ = augmented[0]
    assert frames.shape == (10, 2, 88, 88) and (frames[:, 0] >= 0).all() and (frames[:, 1] <= 0).all()
    plain_test = DVSLip(root, "test", num_bins=10, augment_spatial=True, augment_temporal=True)
    assert not plain_test.augment_spatial and not plain_test.augment_temporal
    with pytest.raises(ValueError, match="mask_max_length"):
        DVSLip(root, "train", num_bins=4, augment_temporal=True, mask_max_length=4, validation="test")


def test_validation_is_held_out_from_train_or_is_the_test_set(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"accused": 10, "action": 10, "allow": 10}, test_per_word=2)
    train, val = DVSLip(root, "train"), DVSLip(root, "val")
    assert len(val) == 3 and len(train) == 27 and not set(train.files) & set(val.files)
    assert sorted(val.labels.tolist()) == [0, 1, 2]
    assert DVSLip(root, "val").files == val.files
    assert any(DVSLip(root, "val", val_seed=seed).files != val.files for seed in (1, 2, 3))
    paper_train, paper_val = DVSLip(root, "train", validation="test"), DVSLip(root, "val", validation="test")
    assert len(paper_train) == 30 and paper_val.files == DVSLip(root, "test").files


def test_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DVSLip(tmp_path / "nowhere")
    (tmp_path / "train" / "accused").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="split folder .*test not found"):
        DVSLip(tmp_path, "test")
    with pytest.raises(ValueError, match="accused holds no .npy"):
        DVSLip(tmp_path, "train")
    (tmp_path / "train" / "hello").mkdir()
    with pytest.raises(ValueError, match="not DVS-Lip words: \\['hello'\\]"):
        DVSLip(tmp_path, "train")
    with pytest.raises(ValueError, match="split must be"):
        DVSLip(tmp_path, "validation")

    corrupt = tmp_path / "bad.npy"
    corrupt.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match="cannot read DVS-Lip events from .*bad.npy"):
        read_events(corrupt)
    np.save(tmp_path / "plain.npy", np.zeros((4, 4)))
    with pytest.raises(ValueError, match="plain.npy: expected a 1-D structured array with fields t, x, y, p"):
        read_events(tmp_path / "plain.npy")
    outside = write_events(tmp_path / "outside.npy", [0, 5], [3, 128], [4, 5], [1, 0])
    with pytest.raises(ValueError, match="outside.npy: 1 of 2 events lie outside the 128x128 sensor"):
        read_events(outside)
    polarity = write_events(tmp_path / "polarity.npy", [0, 5], [3, 4], [4, 5], [1, -1])
    with pytest.raises(ValueError, match="polarity p must be 0"):
        read_events(polarity)


def test_bool_polarity_and_other_field_types_are_read_by_name(tmp_path: Path) -> None:
    dtype = np.dtype([("x", np.int16), ("y", np.int16), ("p", bool), ("t", np.int64)])
    events = np.zeros(3, dtype=dtype)
    events["t"], events["x"], events["y"], events["p"] = [10, 50_000, 90_000], [1, 2, 3], [4, 5, 6], [True, False, True]
    np.save(tmp_path / "tonic.npy", events)
    counts = bin_events(read_events(tmp_path / "tonic.npy"), 30)
    assert counts[0, 0, 4, 1] == 1 and counts[1, 1, 5, 2] == 1 and counts[2, 0, 6, 3] == 1 and counts.sum() == 3


def test_cache_stores_binned_counts_and_notices_changed_files(tmp_path: Path) -> None:
    root = make_root(tmp_path / "data", {"banks": 1})
    cache = tmp_path / "cache"
    dataset = DVSLip(root, "test", num_bins=6, cache_dir=cache)
    first = dataset.counts(0)
    stored = cache / "bins6" / "test" / "banks" / "0.npz"
    assert stored.is_file()
    with np.load(stored) as sparse:
        assert sparse["index"].size == np.count_nonzero(first) and sparse["count"].sum() == first.sum()
    np.testing.assert_array_equal(DVSLip(root, "test", num_bins=6, cache_dir=cache).counts(0), first)
    np.testing.assert_array_equal(dataset.counts(0), first)
    write_events(dataset.files[0], [0, 300_000, 700_000], [30, 31, 32], [40, 41, 42], [1, 1, 0])
    os.utime(dataset.files[0], ns=(1, 1))
    assert dataset.counts(0).sum() == 3


def save_structured(path: Path, t: np.ndarray, t_dtype: str, count: int = 200) -> Path:
    """A published-layout file whose t column has dtype `t_dtype` (x, y, p as write_events)."""
    rng = np.random.default_rng(0)
    dtype = np.dtype([("t", t_dtype), ("x", "<i2"), ("y", "<i2"), ("p", "<i1")])
    events = np.zeros(count, dtype=dtype)
    events["t"], events["x"], events["y"] = t, rng.integers(0, 128, count), rng.integers(0, 128, count)
    events["p"] = rng.integers(0, 2, count)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, events)
    return path


@pytest.mark.parametrize(
    ("unit", "t_dtype", "scale", "message"),
    [
        ("seconds", "<f8", 1e-6, r"timestamps t are float64 with fractions .* multiply by 1e6"),
        ("seconds", "<f4", 1e-6, r"timestamps t are float32 with fractions"),
        ("milliseconds", "<i4", 1e-3, r"all 200 events lie within 1\d\d\d timestamp units.* seconds or milliseconds"),
        ("whole seconds", "<i8", 1e-6, r"all 200 events lie within 1 timestamp units"),
    ],
)
def test_timestamps_in_other_units_are_refused_with_what_was_expected(
    tmp_path: Path, unit: str, t_dtype: str, scale: float, message: str
) -> None:
    """Before, these binned every event into the first frame without a word."""
    root = make_root(tmp_path, {"banks": 1})
    t_us = np.sort(np.random.default_rng(1).uniform(0, 1.2e6, 200))
    save_structured(root / "test" / "banks" / "0.npy", t_us * scale, t_dtype)
    dataset = DVSLip(root, "test")
    with pytest.raises(ValueError, match=rf"0.npy: {message}"):
        dataset[0]


def test_float_microseconds_and_non_finite_fields(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"banks": 1})
    t_us = np.round(np.sort(np.random.default_rng(1).uniform(0, 1.2e6, 200)))
    path = save_structured(root / "test" / "banks" / "0.npy", t_us, "<f8")
    frames, _ = DVSLip(root, "test", num_bins=30)[0]
    assert frames.abs().sum() > 0, "whole microseconds stored as floats are read"
    t_us[5] = np.nan
    save_structured(path, t_us, "<f8")
    with pytest.raises(ValueError, match="0.npy: field t holds 1 non-finite values"):
        DVSLip(root, "test")[0]


def test_file_headers_are_checked_when_the_dataset_opens_and_broken_files_can_be_skipped(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"banks": 3}, test_per_word=3)
    broken = root / "test" / "banks" / "1.npy"
    broken.write_bytes(b"\x93NUMPY garbage")
    np.save(root / "test" / "banks" / "2.npy", np.zeros((4, 4)))
    with pytest.raises(ValueError, match="cannot read DVS-Lip events from .*1.npy"):
        DVSLip(root, "test")
    late = DVSLip(root, "test", check_files="first_read")
    late[0]
    with pytest.raises(ValueError, match="1.npy"):
        late[1]
    with pytest.warns(UserWarning, match="skipped 2 unreadable sample") as caught:
        dataset = DVSLip(root, "test", skip_unreadable=True)
    assert len(caught) == 1 and "1.npy" in str(caught[0].message) and "2.npy" in str(caught[0].message)
    assert [path.name for path in dataset.files] == ["0.npy"]
    skipping = DVSLip(root, "test", check_files="first_read", skip_unreadable=True)
    with pytest.warns(UserWarning, match="skipped an unreadable sample") as caught:
        frames, label = skipping[1]
    assert ["1.npy" in str(w.message) for w in caught] == [True, False] and "2.npy" in str(caught[1].message)
    assert torch.equal(frames, skipping[0][0]) and int(label) == WORDS.index("banks"), "item 0: next readable"
