"""MVSEC indoor_flying (Zhu et al. 2018) for stereo depth, as StereoSpike (Rançon et al. 2021) uses it.

On-disk layout (the published files; ``ROOT/indoor_flying/`` is also accepted)::

    ROOT/indoor_flying{N}_data.hdf5       davis/{left,right}/events: [n, 4] float (x, y, t in s, polarity)
    ROOT/indoor_flying{N}_gt.hdf5         davis/left/depth_image_rect: [F, H, W] metres (NaN = no depth)
                                          davis/left/depth_image_rect_ts: [F] seconds
    ROOT/indoor_flying_calib/indoor_flying_{left,right}_{x,y}_map.txt   [H, W] rectification maps (x' = map[y, x])

The sensor size (H, W) is the depth maps' (260 x 346 for the published DAVIS346 files); the calibration maps must
have that size and every raw event must lie on the sensor.

Splits (the StereoSpike repository, after Tulyakov et al. 2019): split k trains on the two other sequences and
splits the held-out sequence into 200 fixed validation samples and the test samples. Frame ranges are 0-based
slices of the depth maps (`SPLIT_SEQUENCES`, the defaults of the option ``frame_ranges``); as in the original, the
first two labels of every slice are not used (the original's warm-up chunk), so sample j of a slice ``[a, b)`` is
depth frame ``a + 2 + j``. A shorter recording (a cut, a subset, a new recording in the same format) is read with
``frame_ranges={sequence: (start, end)}``: validation positions past its end are left out and the test positions
stop at its end.

One sample = the events of both cameras in the ``window_s`` = 50 ms window (t_d - 50 ms, t_d] before depth
timestamp t_d, rectified with the calibration maps, truncated to integer pixels (events mapped outside the sensor
are dropped, as in the original), and counted per pixel and polarity (ON iff polarity == 1). With ``num_bins``
T > 1 the window is cut into T equal sub-windows. That is ``window_alignment="depth"``. The original cut each
camera's stream into a fixed 50 ms grid from its first event of the slice (``window_alignment="grid"``, what the
StereoSpike recipes use): depth map k of a slice [a, b) gets (t0 + 50 ms k, t0 + 50 ms (k + 1)), both bounds open,
where t0 is the first event after t_a - 50 ms that rectification keeps on the sensor, events at or after t_(b-1)
left out; left and right each have their own t0 (README section "MVSEC window alignment": 3-5 % of the events of a
window differ between the two).

Events are read per sample from the HDF5 files (window boundaries are found once, streaming the time column in
chunks), so memory stays bounded; rectification and binning are vectorised. Event values, depth timestamps and
calibration maps must be finite (a NaN or Inf is an error naming the file).

Labels: the left rectified depth; NaN -> 0, a grayscale area closing with area 24 (4-connectivity) fills holes and
dead pixels (``skimage.morphology.area_closing`` in the original), then 0 -> NaN. NaN marks invalid pixels, and
an infinite depth is an error. The closing costs ~0.3-0.6 s of CPU per 260 x 346 map; with ``cache_dir`` each
filled map is computed once and stored there (keyed by the ground-truth file's name, size and modification time
and the hole area), so later epochs read it back.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.datasets.options import checked_options

__all__ = ["MVSEC", "SPLIT_SEQUENCES", "area_closing", "fill_depth_holes", "load_rectification_map"]

WINDOW_S = 0.05
SKIPPED_LABELS = 2
HOLE_AREA = 24
TIME_CHUNK = 1 << 20

# split -> (training sequences with frame slices, held-out sequence with its slice)
SPLIT_SEQUENCES: dict[int, tuple[dict[int, tuple[int, int]], tuple[int, tuple[int, int]]]] = {
    1: ({2: (159, 1581), 3: (124, 1816)}, (1, (139, 1201))),
    2: ({1: (79, 1261), 3: (124, 1816)}, (2, (119, 1421))),
    3: ({1: (79, 1261), 2: (119, 1581)}, (3, (72, 1816))),
}
# the original's test lists stop here (exclusive; positions in the held-out slice); split 1's list also names 1060,
# one past the end (IndexError)
TEST_END = {1: 1060, 2: 1300, 3: 1542}
VALID_INDICES = {
    1: (
        1, 11, 15, 25, 29, 47, 53, 56, 60, 67, 80, 82, 89, 95, 100, 107, 108, 110, 112, 114, 124, 136, 138, 139, 140,
        153, 155, 158, 173, 177, 185, 190, 193, 215, 216, 223, 231, 235, 236, 242, 244, 271, 281, 286, 287, 292, 293,
        300, 303, 304, 305, 308, 312, 314, 323, 328, 332, 338, 348, 351, 355, 359, 372, 375, 383, 385, 393, 396, 397,
        402, 409, 411, 418, 423, 433, 440, 441, 451, 455, 458, 477, 478, 479, 481, 486, 488, 494, 495, 500, 524, 525,
        527, 533, 537, 538, 539, 541, 546, 562, 567, 569, 574, 576, 587, 590, 595, 603, 614, 619, 621, 627, 633, 638,
        652, 659, 668, 671, 673, 676, 680, 682, 689, 690, 691, 706, 707, 720, 735, 742, 744, 745, 748, 749, 752, 755,
        757, 770, 773, 774, 776, 780, 782, 784, 788, 801, 808, 809, 810, 814, 819, 823, 831, 834, 839, 840, 846, 858,
        863, 872, 874, 878, 881, 883, 884, 885, 887, 898, 899, 900, 904, 908, 914, 916, 926, 927, 936, 941, 943, 951,
        954, 963, 965, 974, 978, 989, 999, 1002, 1005, 1009, 1012, 1015, 1018, 1023, 1032, 1034, 1035, 1040, 1044,
        1045, 1059,
    ),
    2: (
        0, 4, 7, 8, 10, 13, 15, 24, 27, 50, 55, 65, 67, 68, 71, 73, 81, 94, 101, 107, 125, 132, 153, 158, 161, 175,
        178, 180, 194, 197, 199, 202, 204, 206, 212, 225, 229, 238, 250, 251, 258, 262, 264, 268, 280, 282, 284, 287,
        298, 301, 322, 324, 329, 331, 333, 334, 338, 344, 350, 353, 363, 365, 368, 384, 386, 387, 388, 389, 413, 419,
        420, 421, 422, 423, 425, 435, 446, 467, 471, 473, 477, 481, 488, 497, 504, 506, 514, 517, 519, 529, 533, 546,
        549, 552, 562, 564, 565, 596, 598, 605, 608, 612, 613, 625, 626, 630, 634, 636, 642, 645, 649, 652, 654, 682,
        685, 697, 701, 707, 710, 711, 716, 717, 720, 728, 734, 738, 749, 771, 772, 773, 776, 793, 798, 803, 807, 810,
        816, 820, 822, 823, 828, 829, 832, 834, 836, 839, 841, 844, 847, 855, 868, 879, 898, 907, 911, 920, 935, 947,
        954, 959, 961, 969, 970, 971, 975, 987, 997, 1005, 1017, 1019, 1022, 1029, 1033, 1037, 1042, 1063, 1066, 1091,
        1093, 1100, 1104, 1113, 1122, 1125, 1144, 1146, 1181, 1189, 1192, 1197, 1202, 1205, 1208, 1216, 1222, 1229,
        1235, 1271, 1286, 1297,
    ),
    3: (
        2, 5, 24, 29, 40, 43, 56, 76, 77, 85, 101, 102, 107, 110, 122, 138, 139, 141, 143, 146, 157, 165, 175, 178,
        179, 182, 219, 245, 260, 263, 264, 285, 286, 288, 291, 297, 302, 321, 334, 340, 348, 356, 357, 367, 368, 371,
        377, 381, 383, 386, 399, 406, 414, 416, 417, 440, 445, 456, 469, 477, 483, 485, 491, 511, 514, 516, 518, 537,
        538, 540, 542, 550, 551, 557, 562, 568, 571, 574, 580, 585, 588, 592, 612, 619, 648, 651, 654, 682, 697, 705,
        715, 728, 730, 740, 741, 759, 762, 765, 768, 770, 785, 791, 836, 851, 855, 860, 872, 880, 885, 897, 905, 913,
        931, 933, 935, 942, 944, 962, 967, 973, 983, 984, 985, 987, 991, 992, 1010, 1012, 1018, 1039, 1041, 1046,
        1051, 1058, 1061, 1071, 1077, 1081, 1097, 1106, 1110, 1111, 1118, 1123, 1132, 1134, 1136, 1150, 1153, 1161,
        1164, 1167, 1172, 1174, 1201, 1207, 1210, 1214, 1217, 1218, 1219, 1223, 1226, 1229, 1236, 1239, 1265, 1267,
        1271, 1284, 1287, 1298, 1299, 1302, 1311, 1315, 1321, 1324, 1334, 1338, 1350, 1352, 1355, 1387, 1393, 1397,
        1409, 1419, 1421, 1455, 1457, 1460, 1461, 1470, 1476, 1505, 1506, 1507, 1520, 1526,
    ),
}  # fmt: skip

Split = Literal["train", "val", "test"]
Cameras = Literal["stereo", "left"]
WindowAlignment = Literal["depth", "grid"]


def area_closing(image: np.ndarray, area_threshold: int) -> np.ndarray:
    """Grayscale area closing with 4-connectivity: every dark basin smaller than `area_threshold` pixels is raised.

    out(x) = the lowest level t >= image(x) at which the connected component of {image <= t} containing x has at
    least `area_threshold` pixels (the whole image's maximum if the image is smaller). Same result as
    ``skimage.morphology.area_closing(image, area_threshold, connectivity=1)``; union-find over the pixels in
    increasing order, keeping for each still-small component the pixels whose level is not decided yet.

    Args:
        image: [H, W] float array. Returns an array of the same shape and dtype.
    """
    height, width = image.shape
    stride = width + 2
    padded = np.pad(image, 1)
    flat = padded.ravel()
    inside = np.zeros(padded.shape, dtype=bool)
    inside[1:-1, 1:-1] = True
    order = np.flatnonzero(inside.ravel())
    order = order[np.argsort(flat[order], kind="stable")].tolist()
    values = flat.tolist()
    parent = [-1] * len(values)  # -1: not reached yet (the padding border is never reached)
    size = [0] * len(values)
    undecided: dict[int, list[int]] = {}  # root of a small component -> its pixels
    out = flat.copy()
    for pixel in order:
        parent[pixel] = pixel
        size[pixel] = 1
        undecided[pixel] = [pixel]
        root = pixel
        for other in (pixel - stride, pixel + stride, pixel - 1, pixel + 1):
            if parent[other] < 0:
                continue
            while parent[other] != other:
                parent[other] = parent[parent[other]]
                other = parent[other]
            if other == root:
                continue
            if size[other] > size[root]:
                other, root = root, other
            parent[other] = root
            size[root] += size[other]
            small_other = undecided.pop(other, None)
            small_root = undecided.get(root)
            if small_other is None or small_root is None:  # merged into a large component at this level
                if small_other:
                    out[small_other] = values[pixel]
                if small_root:
                    out[small_root] = values[pixel]
                    del undecided[root]
            else:
                small_root.extend(small_other)
        if root in undecided and size[root] >= area_threshold:
            out[undecided.pop(root)] = values[pixel]
    for pixels in undecided.values():
        out[pixels] = image.max()
    return out.reshape(padded.shape)[1:-1, 1:-1]


def fill_depth_holes(depth: np.ndarray) -> np.ndarray:
    """The original's label processing: NaN -> 0, area closing (area 24), then 0 -> NaN (invalid). [H, W] metres."""
    closed = area_closing(np.nan_to_num(depth, nan=0.0), HOLE_AREA)
    closed[closed == 0] = np.nan
    return closed


def load_rectification_map(path: Path, sensor: tuple[int, int]) -> np.ndarray:
    """One published ``*_map.txt`` as a float32 [H, W] array; its size must equal the sensor's."""
    if not path.is_file():
        raise FileNotFoundError(f"MVSEC calibration map {path} not found (from indoor_flying_calib.zip)")
    try:
        table = np.loadtxt(path, dtype=np.float32, ndmin=2)
    except ValueError as error:
        raise ValueError(f"MVSEC calibration map {path} is not a numeric table: {error}") from None
    if table.shape != sensor:
        raise ValueError(
            f"MVSEC calibration map {path} is {table.shape[0]} x {table.shape[1]}, expected the sensor "
            f"size {sensor[0]} x {sensor[1]} (rows x columns of the depth maps)"
        )
    if not np.isfinite(table).all():
        raise ValueError(f"MVSEC calibration map {path} holds {int((~np.isfinite(table)).sum())} non-finite values")
    return table


def _dataset(handle: h5py.File, key: str, path: Path) -> h5py.Dataset:
    if key not in handle:
        raise KeyError(f"MVSEC file {path} has no {key!r} (keys under davis/: {_keys(handle)})")
    return handle[key]


def _keys(handle: h5py.File) -> list[str]:
    names: list[str] = []
    if "davis" in handle:
        handle["davis"].visit(names.append)
    return names


def _open(path: Path) -> h5py.File:
    if not path.is_file():
        raise FileNotFoundError(f"MVSEC file {path} not found")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise OSError(f"MVSEC file {path} is not a readable HDF5 file: {error}") from None


def _count_events(events: h5py.Dataset, edges: np.ndarray, side: str, path: Path) -> np.ndarray:
    """For each time in `edges`, the number of events before it (``side="left"``: t < edge; ``"right"``: t <= edge),
    streaming the time column in chunks. Checks that the times are finite and sorted (as published)."""
    if events.ndim != 2 or events.shape[1] != 4:
        raise ValueError(f"{path}: {events.name} must be [n, 4] (x, y, t, polarity), got {events.shape}")
    counts = np.zeros(edges.shape, dtype=np.int64)
    previous = -np.inf
    for start in range(0, events.shape[0], TIME_CHUNK):
        times = events[start : start + TIME_CHUNK, 2]
        if not np.isfinite(times).all():
            bad = start + int(np.flatnonzero(~np.isfinite(times))[0])
            raise ValueError(f"{path}: {events.name} has a non-finite timestamp at event {bad}")
        if times[0] < previous or np.any(np.diff(times) < 0):
            raise ValueError(f"{path}: {events.name} timestamps are not sorted (near event {start})")
        previous = times[-1]
        counts += np.searchsorted(times, edges, side=side)
    return counts


def _rectified_inside(x: np.ndarray, y: np.ndarray, maps: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Bool mask of the events whose rectified position lies on the sensor (the rest are dropped, as the original)."""
    x_map, y_map = maps
    height, width = x_map.shape
    column, row = x_map[y, x], y_map[y, x]
    return (column >= 0) & (column < width) & (row >= 0) & (row < height)


class _Sequence:
    """One indoor_flying sequence: depth labels, their timestamps and per-camera event windows (lazily opened).

    `frames` are the depth maps of the samples, taken from the slice ``[first, end)`` of the split.
    """

    def __init__(self, root: Path, number: int, frames: np.ndarray, first: int, end: int) -> None:
        self.data_path = root / f"indoor_flying{number}_data.hdf5"
        self.gt_path = root / f"indoor_flying{number}_gt.hdf5"
        with _open(self.gt_path) as gt:
            depth = _dataset(gt, "davis/left/depth_image_rect", self.gt_path)
            stamps = _dataset(gt, "davis/left/depth_image_rect_ts", self.gt_path)[:]
            if depth.ndim != 3 or depth.shape[0] != stamps.shape[0]:
                raise ValueError(
                    f"{self.gt_path}: depth_image_rect {depth.shape} does not match depth_image_rect_ts {stamps.shape}"
                )
            self.sensor = (int(depth.shape[1]), int(depth.shape[2]))
        if end > stamps.shape[0]:
            raise ValueError(
                f"{self.gt_path} has {stamps.shape[0]} depth maps; the split needs frame {end - 1} (for a shorter "
                f"recording pass frame_ranges={{{number}: (start, end)}} with end <= {stamps.shape[0]})"
            )
        if not np.isfinite(stamps[first:end]).all():
            raise ValueError(f"{self.gt_path}: depth_image_rect_ts holds non-finite timestamps")
        self.frames = frames
        self.first = first
        self.ends = stamps[frames].astype(np.float64)
        self.slice_times = (float(stamps[first]), float(stamps[end - 1]))
        stat = self.gt_path.stat()
        self.gt_stamp = f"{self.gt_path.name}-{stat.st_size}-{stat.st_mtime_ns}"
        self.windows: dict[str, np.ndarray] = {}
        self.bounds: dict[str, np.ndarray] = {}
        self._handles: tuple[int, h5py.File, h5py.File] | None = None

    def locate(
        self,
        cameras: tuple[str, ...],
        window_s: float,
        alignment: WindowAlignment,
        maps: dict[str, tuple[np.ndarray, np.ndarray]],
    ) -> None:
        """Find every sample's window per camera: `windows` [N, 2] (start, end) seconds, `bounds` [N, 2] events.

        ``"depth"``: (t_d - window_s, t_d] before each depth stamp t_d, both cameras alike. ``"grid"``: the
        original's fixed grid, per camera: t0 = the first event after t_first - window_s (t_first, t_last: first
        and last depth stamps of the slice) that stays on the sensor after rectification; the depth map k maps of
        the slice gets (t0 + k window_s, t0 + (k + 1) window_s), both bounds open, cut at t_last.
        """
        with _open(self.data_path) as data:
            for camera in cameras:
                events = _dataset(data, f"davis/{camera}/events", self.data_path)
                if alignment == "depth":
                    starts = self.ends - window_s
                    counts = _count_events(events, np.concatenate([starts, self.ends]), "right", self.data_path)
                    self.windows[camera] = np.stack([starts, self.ends], axis=1)
                    self.bounds[camera] = counts.reshape(2, -1).T
                    continue
                first, last = self.slice_times
                origin = self._grid_origin(events, camera, first - window_s, last, maps[camera])
                starts = origin + window_s * (self.frames - self.first)
                stops = starts + window_s
                after = _count_events(events, starts, "right", self.data_path)
                before = _count_events(events, np.concatenate([stops, [last]]), "left", self.data_path)
                self.windows[camera] = np.stack([starts, stops], axis=1)
                self.bounds[camera] = np.stack([after, np.minimum(before[:-1], before[-1])], axis=1)

    def _grid_origin(
        self, events: h5py.Dataset, camera: str, after: float, before: float, maps: tuple[np.ndarray, np.ndarray]
    ) -> float:
        """Time of the first event in (after, before) that rectification keeps on the sensor."""
        index = int(_count_events(events, np.array([after]), "right", self.data_path)[0])
        while index < events.shape[0]:
            chunk = events[index : index + 4096]
            chunk = chunk[chunk[:, 2] < before]
            if len(chunk) == 0:
                break
            kept = np.flatnonzero(_rectified_inside(chunk[:, 0].astype(np.int64), chunk[:, 1].astype(np.int64), maps))
            if kept.size:
                return float(chunk[kept[0], 2])
            index += 4096
        raise ValueError(f"{self.data_path}: davis/{camera}/events has no event on the sensor in ({after}, {before}) s")

    def handles(self) -> tuple[h5py.File, h5py.File]:
        """(data, gt) files, opened once per process (DataLoader workers each open their own)."""
        if self._handles is None or self._handles[0] != os.getpid():
            self._handles = (os.getpid(), _open(self.data_path), _open(self.gt_path))
        return self._handles[1], self._handles[2]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handles": None}


def depth_frame_count(root: str | Path, number: int) -> int:
    """Number of depth maps of ``indoor_flying{number}_gt.hdf5`` under `root` (to choose ``frame_ranges``)."""
    path = Path(root) / f"indoor_flying{number}_gt.hdf5"
    with _open(path) as gt:
        return int(_dataset(gt, "davis/left/depth_image_rect_ts", path).shape[0])


FrameRanges = dict[int, tuple[int, int | None]]


class MVSEC(Dataset):
    """MVSEC indoor_flying stereo-depth samples: ``(events [T, C, H, W] float32 counts, depth [1, H, W] metres)``.

    Channels: left-ON, left-OFF, right-ON, right-OFF (``cameras="stereo"``) or left-ON, left-OFF (``"left"``).
    Depth: left rectified depth after hole filling; NaN = invalid (no ground truth).

    Args:
        root: folder with the published files (see the module docstring).
        split: ``"train"``, ``"val"`` (200 fixed samples of the held-out sequence) or ``"test"`` (the rest).
        split_index: 1, 2 or 3 (which sequence is held out).
        cameras: ``"stereo"`` (4 channels) or ``"left"`` (2 channels, monocular).
        num_bins: T, equal sub-windows of the window (1 in the paper).
        window_s: seconds of events before each depth timestamp (0.05 in the paper).
        frame_ranges: ``{sequence: (start, end)}`` depth-frame slices replacing the published ones of this split
            (end ``None``: the last depth map); ``None``: the published ranges.
        window_alignment: ``"depth"``: the window ends at each depth stamp (both cameras); ``"grid"``: the
            original's fixed grid from each camera's first event of the slice (the StereoSpike recipes).
        fill_holes: apply the original's area closing to the labels (~0.5 s per 260 x 346 map on one core).
        cache_dir: if set, filled depth maps are stored there once and read back in later epochs.
        max_samples: keep only the first this many samples (quick runs); None keeps all.
    """

    @checked_options
    def __init__(
        self,
        root: str | Path,
        split: Split = "train",
        *,
        split_index: int = 1,
        cameras: Cameras = "stereo",
        num_bins: int = 1,
        window_s: float = WINDOW_S,
        frame_ranges: FrameRanges | None = None,
        window_alignment: WindowAlignment = "depth",
        fill_holes: bool = True,
        cache_dir: str | Path | None = None,
        max_samples: int | None = None,
    ) -> None:
        if split_index not in SPLIT_SEQUENCES:
            raise ValueError(f"MVSEC split_index must be 1, 2 or 3, got {split_index!r}")
        if num_bins < 1:
            raise ValueError(f"MVSEC num_bins must be >= 1, got {num_bins}")
        if not 0 < window_s < np.inf:
            raise ValueError(f"MVSEC window_s must be a finite number of seconds > 0, got {window_s}")
        if max_samples is not None and max_samples < 1:
            raise ValueError(f"MVSEC max_samples must be >= 1 or None, got {max_samples}")
        folder = Path(root)
        if not (folder / "indoor_flying1_gt.hdf5").exists() and (folder / "indoor_flying").is_dir():
            folder = folder / "indoor_flying"
        self.root = folder
        self.split = split
        self.num_bins = num_bins
        self.window_s = window_s
        self.fill_holes = fill_holes
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.cameras = ("left", "right") if cameras == "stereo" else ("left",)
        self.samples: list[tuple[int, int]] = []  # (sequence number, position in that sequence's frame list)
        self.sequences: dict[int, _Sequence] = {}
        for number, (frames, (first, end)) in self._frames(folder, split, split_index, frame_ranges or {}).items():
            self.sequences[number] = _Sequence(folder, number, frames, first, end)
            self.samples += [(number, position) for position in range(len(frames))]
        if max_samples is not None:
            self.samples = self.samples[:max_samples]
        sensors = {sequence.sensor for sequence in self.sequences.values()}
        if len(sensors) != 1:
            raise ValueError(f"MVSEC sequences in {folder} have different depth-map sizes: {sorted(sensors)}")
        self.sensor: tuple[int, int] = sensors.pop()
        calib = folder / "indoor_flying_calib"
        self.maps = {
            camera: (
                load_rectification_map(calib / f"indoor_flying_{camera}_x_map.txt", self.sensor),
                load_rectification_map(calib / f"indoor_flying_{camera}_y_map.txt", self.sensor),
            )
            for camera in self.cameras
        }
        self.window_alignment = window_alignment
        for sequence in self.sequences.values():
            sequence.locate(self.cameras, window_s, window_alignment, self.maps)

    @staticmethod
    def _frames(
        root: Path, split: Split, split_index: int, ranges: FrameRanges
    ) -> dict[int, tuple[np.ndarray, tuple[int, int]]]:
        """Per sequence: the depth frames of the split's samples (first two labels of a slice skipped) and the
        slice ``(first, end)`` they come from."""
        training, (held_out, published) = SPLIT_SEQUENCES[split_index]
        slices = {**training, held_out: published}
        for number, bounds in ranges.items():
            if number not in slices:
                raise ValueError(
                    f"MVSEC frame_ranges names sequence {number}, but split {split_index} uses sequences "
                    f"{sorted(slices)}"
                )
            start, end = bounds
            end = depth_frame_count(root, number) if end is None else end
            if not (start >= 0 and start + SKIPPED_LABELS < end):
                raise ValueError(
                    f"MVSEC frame_ranges[{number}] = {bounds}: need 0 <= start and start + {SKIPPED_LABELS} < end "
                    f"(the first {SKIPPED_LABELS} labels of a range are not used)"
                )
            slices[number] = (start, end)
        if split == "train":
            return {
                number: (np.arange(slices[number][0] + SKIPPED_LABELS, slices[number][1]), slices[number])
                for number in training
            }
        start, end = slices[held_out]
        available = end - start - SKIPPED_LABELS
        valid = np.array([position for position in VALID_INDICES[split_index] if position < available])
        if split == "val":
            positions = valid
        else:
            positions = np.setdiff1d(np.arange(min(TEST_END[split_index], available)), valid)
        return {held_out: (start + SKIPPED_LABELS + positions, (start, end))}

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        number, position = self.samples[index]
        sequence = self.sequences[number]
        data, gt = sequence.handles()
        frames = [
            self._bin(
                data[f"davis/{camera}/events"], *sequence.bounds[camera][position],
                float(sequence.windows[camera][position, 0]), camera, sequence,
            )
            for camera in self.cameras
        ]  # fmt: skip
        depth = self._depth(gt, sequence, int(sequence.frames[position]))
        return torch.from_numpy(np.concatenate(frames, axis=1)), torch.from_numpy(depth)[None]

    def _depth(self, gt: h5py.File, sequence: _Sequence, frame: int) -> np.ndarray:
        """Depth map `frame` [H, W] float32 metres, hole-filled if asked (from the cache when there is one)."""
        cached = None
        if self.fill_holes and self.cache_dir is not None:
            key = hashlib.sha1(f"{sequence.gt_stamp}-area{HOLE_AREA}".encode()).hexdigest()[:16]
            cached = self.cache_dir / "mvsec-filled-depth" / f"{sequence.gt_path.stem}-{key}" / f"{frame:06d}.npy"
            if cached.is_file():
                return np.load(cached)
        depth = gt["davis/left/depth_image_rect"][frame].astype(np.float32)
        if np.isinf(depth).any():
            raise ValueError(
                f"{sequence.gt_path}: depth map {frame} holds {int(np.isinf(depth).sum())} infinite values "
                "(invalid pixels are NaN in the published files)"
            )
        if not self.fill_holes:
            return depth
        depth = fill_depth_holes(depth)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_name(f".{cached.stem}.{os.getpid()}.npy")
            np.save(partial, depth)
            os.replace(partial, cached)
        return depth

    def _bin(
        self, events: h5py.Dataset, start: int, stop: int, window_start: float, camera: str, sequence: _Sequence
    ) -> np.ndarray:
        """Rectified per-pixel ON/OFF counts of events[start:stop] (the window from `window_start` on): [T, 2, H, W]."""
        height, width = self.sensor
        chunk = events[start:stop]
        if not np.isfinite(chunk).all():
            bad = int(np.flatnonzero(~np.isfinite(chunk).all(axis=1))[0])
            raise ValueError(
                f"{sequence.data_path}: davis/{camera}/events has a non-finite value in event {start + bad}: "
                f"{chunk[bad].tolist()}"
            )
        x = chunk[:, 0].astype(np.int64)
        y = chunk[:, 1].astype(np.int64)
        off_sensor = (x < 0) | (x >= width) | (y < 0) | (y >= height)
        if off_sensor.any():
            bad = int(np.flatnonzero(off_sensor)[0])
            raise ValueError(
                f"{sequence.data_path}: davis/{camera}/events has event {start + bad} at (x={x[bad]}, "
                f"y={y[bad]}) outside the {height} x {width} sensor"
            )
        x_map, y_map = self.maps[camera]
        keep = _rectified_inside(x, y, self.maps[camera])
        column = x_map[y[keep], x[keep]].astype(np.int64)
        row = y_map[y[keep], x[keep]].astype(np.int64)
        channel = (chunk[keep, 3] != 1).astype(np.int64)
        since_start = chunk[keep, 2] - window_start
        step = np.clip(np.ceil(since_start * self.num_bins / self.window_s).astype(np.int64) - 1, 0, self.num_bins - 1)
        flat = ((step * 2 + channel) * height + row) * width + column
        counts = np.bincount(flat, minlength=self.num_bins * 2 * height * width)
        return counts.astype(np.float32).reshape(self.num_bins, 2, height, width)
