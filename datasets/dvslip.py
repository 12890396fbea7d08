"""DVS-Lip (Tan et al., CVPR 2022): event-camera recordings of 100 spoken words, binned as SpikGRU does.

On disk, as published::

    <root>/train/<word>/<n>.npy      one structured NumPy array of events per utterance,
    <root>/test/<word>/<n>.npy       fields t (us), x, y (0..127 on the 128x128 sensor), p (0 = OFF, 1 = ON)

Labels are the indices of the 100 words in alphabetical order (`WORDS`), as int64 0-d tensors. A sample becomes
event-count frames [T, 2, 88, 88] float32 with T = ``num_bins`` (design note spikgru.md, section 2):

- binning: a fixed 1.2 s window of T bins of width 40000 / (T / 30) us; event k goes to bin round(t / width)
  (half to even, like NumPy), events from bin T on are left out; counts are summed per pixel, ON counts in
  channel 0 (positive) and OFF counts in channel 1 (negative); rows are y, columns x; no normalisation;
- train: centre crop 96, random crop 88, horizontal flip with p = 0.5 (one draw for all frames); val/test:
  centre crop 88;
- ``augment_spatial`` (augS, train only): 4 cutout holes (side 2 * (randint(1, 20) // 2), zeroed in every frame)
  then a zoom: in (centre crop to 62..87, resize to 88) or out (zero-pad 0..25 pixels, resize to 88), bilinear
  without antialiasing, as torchvision 0.14 resized tensors;
- ``augment_temporal`` (augT, train only): `mask_count` masks of randint(0, mask_max_length) whole frames zeroed
  (default 6 masks of up to T // 5 frames: 18 at T = 90 as in the paper, 6 at T = 30 as its README advises).

Random draws use torch's default generator, which `DataLoader` seeds per worker.

Timestamps must be integer microseconds (an integer dtype, or a float dtype holding whole numbers). Float seconds
or milliseconds would put every event into the first bin; they are refused with a message saying what was found.
File headers (a 1-D structured array with fields t, x, y, p) are checked when the dataset opens
(``check_files="open"``) or as each file is first read (``"first_read"``); ``skip_unreadable=True`` leaves failing
files out with a warning listing them instead of raising.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from zoo.datasets.holdout import Validation, check_validation, published_part, split_indices
from zoo.datasets.notices import UnreadableSamples, warn_skipped
from zoo.datasets.options import checked_options

__all__ = ["EVENT_DTYPE", "SENSOR_SIZE", "WORDS", "DVSLip", "bin_events", "read_events", "write_events"]

SENSOR_SIZE = 128
CROP_SIZE = 88
TRAIN_CENTER_CROP = 96
BIN_WIDTH_AT_30_BINS_US = 40000.0
CUTOUT_HOLES, CUTOUT_MAX_LENGTH = 4, 20
ZOOM_MAX_SCALE = 26
EVENT_FIELDS = ("t", "x", "y", "p")
EVENT_DTYPE = np.dtype([("t", "<i4"), ("x", "<i2"), ("y", "<i2"), ("p", "<i1")])
"""Field layout `write_events` uses (tonic's DVS-Lip test files order t, x, y, p); reading accepts any numeric or
bool field types with these names."""

WORDS = (
    "accused",
    "action",
    "allow",
    "allowed",
    "america",
    "american",
    "another",
    "around",
    "attacks",
    "banks",
    "become",
    "being",
    "benefit",
    "benefits",
    "between",
    "billion",
    "called",
    "capital",
    "challenge",
    "change",
    "chief",
    "couple",
    "court",
    "death",
    "described",
    "difference",
    "different",
    "during",
    "economic",
    "education",
    "election",
    "england",
    "evening",
    "everything",
    "exactly",
    "general",
    "germany",
    "giving",
    "ground",
    "happen",
    "happened",
    "having",
    "heavy",
    "house",
    "hundreds",
    "immigration",
    "judge",
    "labour",
    "leaders",
    "legal",
    "little",
    "london",
    "majority",
    "meeting",
    "military",
    "million",
    "minutes",
    "missing",
    "needs",
    "number",
    "numbers",
    "paying",
    "perhaps",
    "point",
    "potential",
    "press",
    "price",
    "question",
    "really",
    "right",
    "russia",
    "russian",
    "saying",
    "security",
    "several",
    "should",
    "significant",
    "spend",
    "spent",
    "started",
    "still",
    "support",
    "syria",
    "syrian",
    "taken",
    "taking",
    "terms",
    "these",
    "thing",
    "think",
    "times",
    "tomorrow",
    "under",
    "warning",
    "water",
    "welcome",
    "words",
    "worst",
    "years",
    "young",
)
"""The 100 DVS-Lip words; a sample's label is its word's index here (alphabetical order)."""


def write_events(path: str | Path, t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray) -> Path:
    """Write one utterance in the published format (a structured `EVENT_DTYPE` array saved with `numpy.save`).

    Args:
        t: timestamps in us, x/y: pixel column/row (0..127), p: polarity (0 = OFF, 1 = ON); all [N].
    """
    path = Path(path)
    events = np.zeros(len(t), dtype=EVENT_DTYPE)
    for field, values in zip(EVENT_FIELDS, (t, x, y, p), strict=True):
        events[field] = values
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, events)
    return path


def read_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """``(shape, dtype)`` of one ``.npy`` event file from its header alone; `ValueError` naming the file if it is not
    a 1-D structured array with fields t, x, y, p."""
    try:
        with open(path, "rb") as file:
            version = np.lib.format.read_magic(file)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = reader(file)
    except Exception as error:  # numpy raises ValueError, OSError, EOFError, ... for a bad header
        raise ValueError(f"cannot read DVS-Lip events from {path}: {type(error).__name__}: {error}") from error
    names = dtype.names or ()
    if len(shape) != 1 or any(field not in names for field in EVENT_FIELDS):
        raise ValueError(
            f"{path}: expected a 1-D structured array with fields t, x, y, p, got dtype {dtype} and shape {shape}"
        )
    return shape, dtype


def read_events(path: Path) -> dict[str, np.ndarray]:
    """The t, x, y, p columns of one event file, checked (ValueError naming the file on any problem).

    t must be integer microseconds: an integer dtype or a float dtype holding finite whole numbers.
    """
    try:
        events = np.load(path, allow_pickle=False)
    except Exception as error:  # numpy raises ValueError, OSError, EOFError, UnpicklingError... for a bad file
        raise ValueError(f"cannot read DVS-Lip events from {path}: {type(error).__name__}: {error}") from error
    names = events.dtype.names or ()
    if events.ndim != 1 or any(field not in names for field in EVENT_FIELDS):
        raise ValueError(
            f"{path}: expected a 1-D structured array with fields t, x, y, p, got dtype {events.dtype} "
            f"and shape {events.shape}"
        )
    columns = {field: np.asarray(events[field]) for field in EVENT_FIELDS}
    for field, column in columns.items():
        if column.dtype.kind not in "biuf":
            raise ValueError(f"{path}: field {field} has dtype {column.dtype}, expected numbers")
        if column.dtype.kind == "f" and not np.isfinite(column).all():
            raise ValueError(f"{path}: field {field} holds {int((~np.isfinite(column)).sum())} non-finite values")
    t = columns["t"]
    if t.dtype.kind == "f" and len(t) and not np.array_equal(t, np.round(t)):
        raise ValueError(
            f"{path}: timestamps t are {t.dtype} with fractions (span {t.min():g} .. {t.max():g}); DVS-Lip stores "
            "integer microseconds (an utterance spans about 1e6 us): seconds would put every event into the first "
            "bin; multiply by 1e6"
        )
    x, y, p = columns["x"].astype(np.int64), columns["y"].astype(np.int64), columns["p"]
    outside = (x < 0) | (x >= SENSOR_SIZE) | (y < 0) | (y >= SENSOR_SIZE)
    if outside.any():
        raise ValueError(
            f"{path}: {int(outside.sum())} of {len(x)} events lie outside the {SENSOR_SIZE}x{SENSOR_SIZE} sensor "
            f"(x in [{x.min()}, {x.max()}], y in [{y.min()}, {y.max()}])"
        )
    if not np.isin(p.astype(np.int64), (0, 1)).all():
        raise ValueError(f"{path}: polarity p must be 0 (OFF) or 1 (ON), got values {np.unique(p)[:6].tolist()}")
    if len(t) and t.min() < 0:
        raise ValueError(f"{path}: negative timestamps (min t = {t.min()})")
    return {"t": t, "x": x, "y": y, "p": p.astype(bool)}


def bin_width_us(num_bins: int) -> float:
    """Bin width in us of `num_bins` bins over the fixed 1.2 s window: 40000 / (T / 30) (the original's formula)."""
    return BIN_WIDTH_AT_30_BINS_US / (num_bins / 30)


def check_time_span(t: np.ndarray, num_bins: int, path: Path) -> None:
    """`ValueError` naming the file when two or more events all fall into the first bin (the signature of timestamps
    in seconds or milliseconds read as microseconds)."""
    width = bin_width_us(num_bins)
    if len(t) >= 2 and float(t.max()) < width / 2:
        raise ValueError(
            f"{path}: all {len(t)} events lie within {float(t.max()):g} timestamp units, less than half of one "
            f"{width:g} us bin, so every event would land in the first bin; DVS-Lip timestamps are integer "
            "microseconds (an utterance spans about 1e6 us): are these seconds or milliseconds?"
        )


def bin_events(events: dict[str, np.ndarray], num_bins: int) -> np.ndarray:
    """ON/OFF event counts per bin and pixel, [T, 2, 128, 128] int32 (both channels >= 0; rows y, columns x).

    Bin width 40000 / (T / 30) us, bin index round(t / width) (half to even); events in bins >= T are left out.
    """
    width = bin_width_us(num_bins)
    bins = np.round(events["t"].astype(np.float64) / width).astype(np.int64)
    kept = bins < num_bins
    channel = np.where(events["p"], 0, 1)
    flat = ((bins * 2 + channel) * SENSOR_SIZE + events["y"]) * SENSOR_SIZE + events["x"]
    counts = np.bincount(flat[kept], minlength=num_bins * 2 * SENSOR_SIZE * SENSOR_SIZE)
    return counts.astype(np.int32).reshape(num_bins, 2, SENSOR_SIZE, SENSOR_SIZE)


def signed_frames(counts: torch.Tensor) -> torch.Tensor:
    """Counts [T, 2, H, W] (an integer tensor) -> float32 frames with ON counts positive and OFF counts negative."""
    return torch.cat([counts[:, :1], -counts[:, 1:]], dim=1).to(torch.float32)


def center_crop(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Centre crop of the last two axes (torchvision's offsets: int(round((H - size) / 2)))."""
    top = int(round((frames.shape[-2] - size) / 2.0))
    left = int(round((frames.shape[-1] - size) / 2.0))
    return frames[..., top : top + size, left : left + size]


def _randint(low: int, high: int) -> int:
    """Uniform integer in [low, high) from torch's default generator."""
    return int(torch.randint(low, high, ()))


def random_crop_and_flip(frames: torch.Tensor, size: int) -> torch.Tensor:
    """One random crop and one horizontal flip (p = 0.5) for all frames."""
    top = _randint(0, frames.shape[-2] - size + 1)
    left = _randint(0, frames.shape[-1] - size + 1)
    frames = frames[..., top : top + size, left : left + size]
    return frames.flip(-1) if torch.rand(()) < 0.5 else frames


def cutout(frames: torch.Tensor, holes: int = CUTOUT_HOLES, max_length: int = CUTOUT_MAX_LENGTH) -> torch.Tensor:
    """Zero `holes` squares (random centre, side 2 * (randint(1, max_length) // 2), clipped) in every frame."""
    frames = frames.clone()
    height, width = frames.shape[-2:]
    for _ in range(holes):
        y, x = _randint(0, height), _randint(0, width)
        half = _randint(1, max_length) // 2
        frames[..., max(y - half, 0) : min(y + half, height), max(x - half, 0) : min(x + half, width)] = 0
    return frames


def zoom(frames: torch.Tensor, max_scale: int = ZOOM_MAX_SCALE) -> torch.Tensor:
    """Zoom in (centre crop to 88 - max_scale..87) or out (zero-pad 0..max_scale - 1), then resize back."""
    size = frames.shape[-1]
    if torch.rand(()) < 0.5:
        frames = center_crop(frames, _randint(size - max_scale, size))
    else:
        pad = _randint(0, max_scale)
        frames = F.pad(frames, (pad, pad, pad, pad))
    return F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False, antialias=False)


def time_mask(frames: torch.Tensor, count: int, max_length: int) -> torch.Tensor:
    """Zero `count` runs of randint(0, max_length) consecutive frames (length 1 if max_length is 1)."""
    frames = frames.clone()
    steps = frames.shape[0]
    for _ in range(count):
        length = 1 if max_length == 1 else _randint(0, max_length)
        start = _randint(0, steps - length)
        frames[start : start + length] = 0
    return frames


class DVSLip(Dataset):
    """DVS-Lip words as event-count frames ``([num_bins, 2, 88, 88] float32, label int64 0-d)``.

    Args:
        root: folder holding ``train/`` and ``test/`` (see the module docstring for the layout).
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_bins: time bins over the fixed 1.2 s window (90 in the paper).
        augment_spatial: augS (cutout + zoom), applied on the train split only.
        augment_temporal: augT (temporal masks), applied on the train split only.
        mask_count: temporal masks per sample (6).
        mask_max_length: masks last randint(0, mask_max_length) frames; ``None``: max(1, num_bins // 5).
        validation: ``"heldout"`` (a seeded, word-stratified part of ``train/`` is ``"val"``) or ``"test"`` (the
            paper: ``"val"`` is ``test/``, model selection on the test set).
        val_fraction: share of every word of ``train/`` held out as ``"val"``.
        val_seed: seed of the held-out draw.
        cache_dir: if set, binned counts are stored there (compressed, per num_bins) and reused while the event
            file's size and modification time are unchanged.
        check_files: ``"open"``: read every file header when the dataset opens; ``"first_read"``: when a file is
            first read.
        skip_unreadable: leave out files that fail the checks, with a warning listing them (default: error).
    """

    NUM_CLASSES = len(WORDS)

    @checked_options
    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        num_bins: int = 90,
        augment_spatial: bool = False,
        augment_temporal: bool = False,
        mask_count: int = 6,
        mask_max_length: int | None = None,
        validation: Validation = "heldout",
        val_fraction: float = 0.1,
        val_seed: int = 0,
        cache_dir: str | Path | None = None,
        check_files: Literal["open", "first_read"] = "open",
        skip_unreadable: bool = False,
    ) -> None:
        check_validation(validation, val_fraction)
        if num_bins < 1:
            raise ValueError(f"DVSLip num_bins (time bins) must be >= 1, got {num_bins}")
        if mask_count < 0:
            raise ValueError(f"DVSLip mask_count must be >= 0, got {mask_count}")
        self.mask_max_length = max(1, num_bins // 5) if mask_max_length is None else mask_max_length
        if augment_temporal and not 1 <= self.mask_max_length < num_bins:
            raise ValueError(
                f"DVSLip mask_max_length must lie in [1, num_bins) = [1, {num_bins}), got {self.mask_max_length}"
            )
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"DVS-Lip root {self.root} does not exist (expected <root>/train, <root>/test)")
        self.split, self.num_bins = split, num_bins
        self.training = split == "train"
        self.augment_spatial = augment_spatial and self.training
        self.augment_temporal = augment_temporal and self.training
        self.mask_count = mask_count
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        files, labels = _list_files(self.root / published_part(split, validation))
        keep = split_indices(
            np.asarray(labels), split, validation=validation, val_fraction=val_fraction, val_seed=val_seed
        )
        files, labels = [files[i] for i in keep], [labels[i] for i in keep]
        if check_files == "open":
            problems, readable = [], []
            for index, path in enumerate(files):
                try:
                    read_header(path)
                except ValueError as error:
                    if not skip_unreadable:
                        raise
                    problems.append(str(error))
                else:
                    readable.append(index)
            warn_skipped("DVSLip", problems)
            files, labels = [files[i] for i in readable], [labels[i] for i in readable]
        self.files = files
        self.labels = np.asarray(labels, dtype=np.int64)
        self._reader = UnreadableSamples("DVSLip", len(files), skip=skip_unreadable)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._reader.read(index, self._item)

    def _item(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        counts = torch.from_numpy(self.counts(index))
        if self.training:
            counts = random_crop_and_flip(center_crop(counts, TRAIN_CENTER_CROP), CROP_SIZE)
        else:
            counts = center_crop(counts, CROP_SIZE)
        frames = signed_frames(counts)  # after cropping: the sign and float conversion touch 88 x 88 pixels only
        if self.augment_spatial:
            frames = zoom(cutout(frames))
        if self.augment_temporal:
            frames = time_mask(frames, self.mask_count, self.mask_max_length)
        return frames.contiguous(), torch.tensor(self.labels[index], dtype=torch.int64)

    def _bin_file(self, path: Path) -> np.ndarray:
        events = read_events(path)
        check_time_span(events["t"], self.num_bins, path)
        return bin_events(events, self.num_bins)

    def counts(self, index: int) -> np.ndarray:
        """Binned ON/OFF counts of sample `index`, [T, 2, 128, 128] int32 (from the cache when valid).

        The cache holds the non-zero bins only (flat index and count, uncompressed): reading it back costs about
        a millisecond, where a compressed dense array took longer to decompress than binning the events again.
        """
        path = self.files[index]
        if self.cache_dir is None:
            return self._bin_file(path)
        stat = path.stat()
        stamp = np.array([stat.st_size, stat.st_mtime_ns], dtype=np.int64)
        relative = path.relative_to(self.root).with_suffix(".npz")
        cached = self.cache_dir / f"bins{self.num_bins}" / relative
        shape = (self.num_bins, 2, SENSOR_SIZE, SENSOR_SIZE)
        if cached.is_file():
            with np.load(cached) as stored:
                if np.array_equal(stored["source"], stamp):
                    counts = np.zeros(int(np.prod(shape)), dtype=np.int32)
                    counts[stored["index"]] = stored["count"]
                    return counts.reshape(shape)
        counts = self._bin_file(path)
        flat = counts.reshape(-1)
        nonzero = np.flatnonzero(flat)
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f".{cached.stem}.{os.getpid()}.npz")
        np.savez(partial, index=nonzero.astype(np.int32), count=flat[nonzero], source=stamp)
        os.replace(partial, cached)
        return counts


def _natural_key(path: Path) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name))


def _list_files(folder: Path) -> tuple[list[Path], list[int]]:
    """Every ``<word>/<n>.npy`` under `folder` with its label; errors name the offending folder."""
    if not folder.is_dir():
        raise FileNotFoundError(
            f"DVS-Lip split folder {folder} not found (expected {folder.parent}/{{train,test}}/<word>/<n>.npy)"
        )
    word_folders = sorted(path for path in folder.iterdir() if path.is_dir())
    if not word_folders:
        raise ValueError(f"DVS-Lip split folder {folder} has no word folders")
    unknown = [path.name for path in word_folders if path.name not in WORDS]
    if unknown:
        raise ValueError(f"{folder}: folders that are not DVS-Lip words: {unknown[:5]} (expected one of WORDS)")
    files, labels = [], []
    for word_folder in word_folders:
        samples = sorted(word_folder.glob("*.npy"), key=_natural_key)
        if not samples:
            raise ValueError(f"DVS-Lip word folder {word_folder} holds no .npy event files")
        files += samples
        labels += [WORDS.index(word_folder.name)] * len(samples)
    return files, labels
