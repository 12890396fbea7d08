"""MVSEC indoor_flying reader: published splits, per-event binning, rectification, hole filling, errors."""

from __future__ import annotations

import gc
import heapq
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from mvsec_files import write_synthetic_sequences

from zoo.datasets import MVSEC
from zoo.datasets.mvsec import VALID_INDICES, area_closing, fill_depth_holes, load_rectification_map

SENSOR = (6, 8)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_sequences(tmp_path_factory.mktemp("mvsec"), sensor=SENSOR, events_per_window=25.0)


def test_published_split_sizes(root: Path) -> None:
    assert len(MVSEC(root, "train", split_index=1)) == (1581 - 161) + (1816 - 126) == 3110
    assert len(MVSEC(root, "val", split_index=1)) == 200
    assert len(MVSEC(root, "test", split_index=1)) == 1060 - 200
    assert len(MVSEC(root, "test", split_index=2)) == 1100
    assert len(MVSEC(root, "test", split_index=3)) == 1342
    assert len(MVSEC(root, "train", split_index=3)) == (1261 - 81) + (1581 - 121)


def _expected_counts(root: Path, number: int, frame: int, camera: str, bins: int) -> np.ndarray:
    """Per-event loop: window (t - 50 ms, t], rectify, truncate, drop off-sensor, count ON/OFF per sub-window."""
    height, width = SENSOR
    with h5py.File(root / f"indoor_flying{number}_gt.hdf5") as gt:
        end = float(gt["davis/left/depth_image_rect_ts"][frame])
    with h5py.File(root / f"indoor_flying{number}_data.hdf5") as data:
        events = data[f"davis/{camera}/events"][:]
    calib = root / "indoor_flying_calib"
    x_map = np.loadtxt(calib / f"indoor_flying_{camera}_x_map.txt")
    y_map = np.loadtxt(calib / f"indoor_flying_{camera}_y_map.txt")
    counts = np.zeros((bins, 2, height, width), dtype=np.float32)
    for x, y, t, polarity in events:
        if not end - 0.05 < t <= end:
            continue
        column, row = float(np.float32(x_map[int(y), int(x)])), float(np.float32(y_map[int(y), int(x)]))
        if not (0 <= column < width and 0 <= row < height):
            continue
        step = min(bins - 1, max(0, int(np.ceil((t - (end - 0.05)) * bins / 0.05)) - 1))
        counts[step, 0 if polarity == 1 else 1, int(row), int(column)] += 1
    return counts


@pytest.mark.parametrize(("split", "index", "number", "frame"), [("train", 0, 2, 161), ("val", 3, 1, 139 + 2 + 25)])
def test_items_match_a_per_event_reference(root: Path, split: str, index: int, number: int, frame: int) -> None:
    dataset = MVSEC(root, split, num_bins=2, fill_holes=False)
    events, depth = dataset[index]
    expected = np.concatenate(
        [_expected_counts(root, number, frame, camera, 2) for camera in ("left", "right")], axis=1
    )
    assert events.shape == (2, 4, *SENSOR) and events.dtype == torch.float32
    assert np.array_equal(events.numpy(), expected)
    assert expected.sum() > 0
    with h5py.File(root / f"indoor_flying{number}_gt.hdf5") as gt:
        raw = gt["davis/left/depth_image_rect"][frame]
    assert depth.shape == (1, *SENSOR)
    assert np.array_equal(depth[0].numpy(), raw, equal_nan=True)
    single, _ = MVSEC(root, split, num_bins=1, fill_holes=False)[index]
    assert torch.equal(single[0], events.sum(0))
    monocular, _ = MVSEC(root, split, cameras="left", fill_holes=False)[index]
    assert torch.equal(monocular, single[:, :2])


def _closing_by_definition(image: np.ndarray, area: int) -> np.ndarray:
    """Lowest max over connected sets of >= area pixels containing x (greedy flood expanding the lowest pixel)."""
    height, width = image.shape
    out = np.empty_like(image)
    for r in range(height):
        for c in range(width):
            seen, frontier, level, size = {(r, c)}, [], image[r, c], 1
            cell = (r, c)
            while True:
                for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                    nr, nc = cell[0] + dr, cell[1] + dc
                    if 0 <= nr < height and 0 <= nc < width and (nr, nc) not in seen:
                        seen.add((nr, nc))
                        heapq.heappush(frontier, (image[nr, nc], nr, nc))
                if size >= area or not frontier:
                    break
                value, *cell = heapq.heappop(frontier)
                level, size = max(level, value), size + 1
            out[r, c] = level if size >= area else image.max()
    return out


def test_area_closing_matches_its_definition() -> None:
    rng = np.random.default_rng(0)
    for trial in range(60):
        shape = tuple(rng.integers(1, 8, 2))
        image = (rng.integers(0, 4, shape) if trial % 2 else rng.random(shape)).astype(np.float32)
        area = int(rng.integers(1, 10))
        assert np.array_equal(area_closing(image, area), _closing_by_definition(image, area)), (image, area)


def test_hole_filling_fills_small_holes_only() -> None:
    depth = np.full((12, 12), 2.0, dtype=np.float32)
    depth[2:4, 2:4] = np.nan  # 4 pixels: filled with the surrounding depth
    depth[6:12, 6:12] = np.nan  # 36 pixels: stays invalid
    filled = fill_depth_holes(depth)
    assert np.all(filled[2:4, 2:4] == 2.0)
    assert np.isnan(filled[6:12, 6:12]).all()
    assert np.array_equal(filled[:2], depth[:2])


def test_reads_the_published_sensor_size(tmp_path: Path) -> None:
    """260 x 346 maps and depth; only the frames the first samples need are written (HDF5 fill value elsewhere)."""
    height, width = 260, 346
    calib = tmp_path / "indoor_flying_calib"
    calib.mkdir()
    rows, columns = np.mgrid[0:height, 0:width]
    for camera in ("left", "right"):
        np.savetxt(calib / f"indoor_flying_{camera}_x_map.txt", columns + 0.5, fmt="%.1f")
        np.savetxt(calib / f"indoor_flying_{camera}_y_map.txt", rows, fmt="%.0f")
    rng = np.random.default_rng(1)
    window_counts = {}
    for number, count in ((2, 1581), (3, 1816)):
        stamps = 100.0 + 0.05 * np.arange(count)
        with h5py.File(tmp_path / f"indoor_flying{number}_gt.hdf5", "w") as gt:
            depth = gt.create_dataset(
                "davis/left/depth_image_rect", (count, height, width), "f4", chunks=(1, height, width), fillvalue=np.nan
            )
            depth[161] = np.full((height, width), 3.0, dtype=np.float32)
            gt["davis/left/depth_image_rect_ts"] = stamps
        with h5py.File(tmp_path / f"indoor_flying{number}_data.hdf5", "w") as data:
            times = np.sort(rng.uniform(stamps[161] - 0.06, stamps[161], 500))
            events = np.stack([rng.integers(0, width, 500), rng.integers(0, height, 500), times, np.ones(500)], 1)
            window_counts[number] = int(((times > stamps[161] - 0.05) & (times <= stamps[161])).sum())
            for camera in ("left", "right"):
                data[f"davis/{camera}/events"] = events
    dataset = MVSEC(tmp_path, "train", max_samples=1)
    events, depth = dataset[0]
    assert dataset.sensor == (260, 346)
    assert events.shape == (1, 4, 260, 346)
    inside = window_counts[2]  # sample 0 = flying2 frame 161
    assert 0 < inside < 500
    assert events[0, 0].sum() == inside == events[0, 2].sum()
    assert events[0, 1].sum() == 0
    assert torch.all(depth == 3.0)


def test_clear_errors(root: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="indoor_flying1_gt.hdf5"):
        MVSEC(tmp_path, "val")
    broken = write_synthetic_sequences(tmp_path / "broken", sensor=SENSOR, frames=(1261, 1581, 1816))
    with h5py.File(broken / "indoor_flying1_gt.hdf5", "a") as gt:
        del gt["davis/left/depth_image_rect_ts"]
    with pytest.raises(KeyError, match="depth_image_rect_ts"):
        MVSEC(broken, "val")
    with pytest.raises(KeyError, match="davis/right/events"):
        with h5py.File(broken / "indoor_flying2_data.hdf5", "a") as data:
            del data["davis/right/events"]
        MVSEC(broken, "train")
    np.savetxt(broken / "indoor_flying_calib" / "indoor_flying_left_y_map.txt", np.zeros((5, 8)))
    with pytest.raises(ValueError, match="5 x 8, expected the sensor size 6 x 8"):
        load_rectification_map(broken / "indoor_flying_calib" / "indoor_flying_left_y_map.txt", SENSOR)
    with pytest.raises(FileNotFoundError, match="right_x_map"):
        load_rectification_map(tmp_path / "indoor_flying_right_x_map.txt", SENSOR)
    with pytest.raises(ValueError, match="split_index"):
        MVSEC(root, "train", split_index=4)
    short = write_synthetic_sequences(tmp_path / "short", sensor=SENSOR, frames=(300, 1581, 1816))
    with pytest.raises(ValueError, match="has 300 depth maps"):
        MVSEC(short, "test")


def test_frame_ranges_read_a_shorter_recording(tmp_path: Path, root: Path) -> None:
    """Before, a recording shorter than the published one could not be loaded without patching module globals."""
    short = write_synthetic_sequences(tmp_path / "short", sensor=SENSOR, frames=(300, 1581, 1816))
    with pytest.raises(ValueError, match=r"has 300 depth maps.*frame_ranges=\{1: \(start, end\)\}"):
        MVSEC(short, "test")
    available = 300 - 139 - 2
    val = MVSEC(short, "val", frame_ranges={1: (139, None)}, fill_holes=False)
    test = MVSEC(short, "test", frame_ranges={1: (139, 300)}, fill_holes=False)
    kept = [position for position in VALID_INDICES[1] if position < available]
    assert len(val) == len(kept) and len(test) == available - len(kept)
    assert [int(val.sequences[1].frames[i]) for i in range(3)] == [141 + p for p in kept[:3]]
    published = MVSEC(root, "val", fill_holes=False)
    explicit = MVSEC(root, "val", frame_ranges={1: (139, 1201)}, fill_holes=False)
    assert len(explicit) == len(published) == 200
    assert all(torch.equal(a.nan_to_num(-1), b.nan_to_num(-1)) for a, b in zip(explicit[7], published[7], strict=True))
    with pytest.raises(ValueError, match=r"names sequence 4, but split 1 uses sequences \[1, 2, 3\]"):
        MVSEC(root, "val", frame_ranges={4: (0, 10)})
    with pytest.raises(ValueError, match=r"need 0 <= start and start \+ 2 < end"):
        MVSEC(root, "val", frame_ranges={1: (10, 12)})
    with pytest.raises(TypeError, match="option 'frame_ranges' expects"):
        MVSEC(root, "val", frame_ranges={1: "all"})


def test_window_length_is_an_option(root: Path) -> None:
    short_window = MVSEC(root, "train", window_s=0.01, fill_holes=False, max_samples=3)
    full = MVSEC(root, "train", fill_holes=False, max_samples=3)
    assert all(short_window[i][0].sum() <= full[i][0].sum() for i in range(3))
    assert sum(short_window[i][0].sum() for i in range(3)) < sum(full[i][0].sum() for i in range(3))
    with pytest.raises(ValueError, match="window_s must be a finite number of seconds > 0"):
        MVSEC(root, "train", window_s=0.0)


def test_non_finite_values_are_refused_naming_the_file(tmp_path: Path) -> None:
    broken = write_synthetic_sequences(tmp_path / "broken", sensor=SENSOR, frames=(1261, 1581, 1816))
    dataset = MVSEC(broken, "val", fill_holes=False)
    sequence = dataset.sequences[dataset.samples[0][0]]
    second_frame = int(sequence.frames[1])
    start = int(sequence.bounds["left"][0][0])
    with h5py.File(broken / "indoor_flying1_data.hdf5", "a") as data:
        data["davis/left/events"][start, 0] = np.nan
    with h5py.File(broken / "indoor_flying1_gt.hdf5", "a") as gt:
        gt["davis/left/depth_image_rect"][second_frame, 0, 0] = np.inf
    with pytest.raises(
        ValueError, match=rf"indoor_flying1_data.hdf5: davis/left/events has a non-finite value in event {start}"
    ):
        MVSEC(broken, "val", fill_holes=False)[0]
    with pytest.raises(ValueError, match=rf"indoor_flying1_gt.hdf5: depth map {second_frame} holds 1 infinite values"):
        MVSEC(broken, "val")[1]
    with h5py.File(broken / "indoor_flying1_data.hdf5", "a") as data:
        data["davis/right/events"][5, 2] = np.nan
    with pytest.raises(ValueError, match="indoor_flying1_data.hdf5: /davis/right/events has a non-finite timestamp"):
        MVSEC(broken, "val")
    calib = broken / "indoor_flying_calib" / "indoor_flying_left_x_map.txt"
    table = np.loadtxt(calib)
    table[2, 3] = np.nan
    np.savetxt(calib, table)
    with pytest.raises(ValueError, match="indoor_flying_left_x_map.txt holds 1 non-finite values"):
        MVSEC(broken, "train")


def test_filled_depth_cache_is_built_once_and_keyed_by_file(tmp_path: Path) -> None:
    data = write_synthetic_sequences(tmp_path / "data", sensor=SENSOR, frames=(1261, 1581, 1816))
    plain = MVSEC(data, "val", max_samples=2)
    cached = MVSEC(data, "val", max_samples=2, cache_dir=tmp_path / "cache")
    expected = plain[1][1]
    assert torch.equal(cached[1][1].isnan(), expected.isnan())
    assert torch.equal(cached[1][1].nan_to_num(), expected.nan_to_num())
    frame = int(cached.sequences[1].frames[1])
    stored = sorted((tmp_path / "cache" / "mvsec-filled-depth").glob("indoor_flying1_gt-*/*.npy"))
    assert [path.name for path in stored] == [f"{frame:06d}.npy"]
    np.save(stored[0], np.full(SENSOR, 7.0, dtype=np.float32))
    assert torch.all(cached[1][1] == 7.0), "read back from the cache, not recomputed"
    del plain, cached
    gc.collect()  # close the datasets' HDF5 handles before writing
    with h5py.File(data / "indoor_flying1_gt.hdf5", "a") as gt:
        gt["davis/left/depth_image_rect"][frame] = 4.0
    changed = MVSEC(data, "val", max_samples=2, cache_dir=tmp_path / "cache")
    assert torch.all(changed[1][1] == 4.0), "a changed ground-truth file gets a new cache key"


def _grid_counts(root: Path, number: int, first: int, end: int, frame: int, camera: str, bins: int) -> np.ndarray:
    """The original's fixed grid, event by event: keep t in (t_first - 50 ms, t_last) that rectify onto the sensor,
    t0 = the first kept event, depth map `frame` gets (t0 + 0.05 k, t0 + 0.05 (k + 1)) with k = frame - first."""
    height, width = SENSOR
    with h5py.File(root / f"indoor_flying{number}_gt.hdf5") as gt:
        stamps = gt["davis/left/depth_image_rect_ts"][:]
    with h5py.File(root / f"indoor_flying{number}_data.hdf5") as data:
        events = data[f"davis/{camera}/events"][:]
    calib = root / "indoor_flying_calib"
    x_map = np.loadtxt(calib / f"indoor_flying_{camera}_x_map.txt").astype(np.float32)
    y_map = np.loadtxt(calib / f"indoor_flying_{camera}_y_map.txt").astype(np.float32)
    kept = []
    for x, y, t, polarity in events:
        if stamps[first] - 0.05 < t < stamps[end - 1]:
            column, row = float(x_map[int(y), int(x)]), float(y_map[int(y), int(x)])
            if 0 <= column < width and 0 <= row < height:
                kept.append((column, row, t, polarity))
    origin = kept[0][2]
    low = origin + 0.05 * (frame - first)
    counts = np.zeros((bins, 2, height, width), dtype=np.float32)
    for column, row, t, polarity in kept:
        if low < t < low + 0.05:
            step = min(bins - 1, max(0, int(np.ceil((t - low) * bins / 0.05)) - 1))
            counts[step, 0 if polarity == 1 else 1, int(row), int(column)] += 1
    return counts


@pytest.mark.parametrize(
    ("split", "index", "number", "first", "end"), [("train", 5, 2, 159, 1581), ("val", 0, 1, 139, 1201)]
)
def test_grid_alignment_matches_the_originals_fixed_grid(
    root: Path, split: str, index: int, number: int, first: int, end: int
) -> None:
    grid = MVSEC(root, split, num_bins=2, fill_holes=False, window_alignment="grid")
    frame = int(grid.sequences[number].frames[index if split == "train" else 0])
    events, _ = grid[index]
    expected = np.concatenate(
        [_grid_counts(root, number, first, end, frame, camera, 2) for camera in ("left", "right")], axis=1
    )
    assert np.array_equal(events.numpy(), expected) and expected.sum() > 0
    depth_aligned, _ = MVSEC(root, split, num_bins=2, fill_holes=False)[index]
    assert not torch.equal(depth_aligned, events), "the two alignments cut different windows"
