"""Spiking Heidelberg Digits (SHD) and Spiking Speech Commands (SSC) from their published HDF5 files.

Layout of a dataset folder (Cramer et al. 2020; https://zenkelab.org/resources/spiking-heidelberg-datasets-shd)::

    root/shd_train.h5  root/shd_test.h5                        (SHD: 20 classes, no validation file)
    root/ssc_train.h5  root/ssc_valid.h5  root/ssc_test.h5     (SSC: 35 classes)

Each file holds ``spikes/times`` (one variable-length array of spike times in seconds per sample),
``spikes/units`` (the matching input channels, 0..699) and ``labels`` (one class index per sample); the
``extra/`` group (speakers, class names) is read only for ``extra/keys``, to catch a file of the other dataset.

A sample is binned into ``num_steps`` time steps as in sparch (Bittar & Garner 2022): with the default
``time_bins="sparch"`` the bin edges are ``linspace(0, max_time, num_steps)`` and a spike at time t goes to step
``digitize(t, edges)``, so step 0 is always empty and steps 1..num_steps-1 are ``max_time / (num_steps - 1)``
wide (14.14 ms for the defaults 100 steps over 1.4 s). ``time_bins="uniform"`` uses ``num_steps`` equal bins of
``max_time / num_steps`` instead. Spikes in the same step and channel are summed (``values="counts"``, as sparch)
or marked once (``values="binary"``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.datasets.holdout import holdout_indices

__all__ = ["NUM_CHANNELS", "SHD", "SSC", "SpikeTrainFile", "bin_spikes", "write_spike_file"]

NUM_CHANNELS = 700
"""Input channels of SHD and SSC (the cochlea model's 700 fibres)."""

TimeBins = Literal["sparch", "uniform"]
SpikeValues = Literal["counts", "binary"]
OutOfWindow = Literal["drop", "error", "last_step"]


def bin_spikes(
    times: np.ndarray,
    units: np.ndarray,
    *,
    num_steps: int = 100,
    max_time: float = 1.4,
    time_bins: TimeBins = "sparch",
    values: SpikeValues = "counts",
    out_of_window: OutOfWindow = "drop",
    num_channels: int = NUM_CHANNELS,
) -> tuple[torch.Tensor, int]:
    """Bin one sample's spikes into a dense ``[num_steps, num_channels]`` float32 tensor (no loop over spikes).

    Args:
        times: ``[N]`` spike times in seconds (>= 0).
        units: ``[N]`` channel of each spike, integers in ``0..num_channels-1``.
        num_steps, max_time: number of time steps and the window they cover, in seconds.
        time_bins: ``"sparch"`` (edges ``linspace(0, max_time, num_steps)``, step 0 empty) or ``"uniform"``.
        values: ``"counts"`` (spikes per step and channel) or ``"binary"`` (1 where at least one spike).
        out_of_window: what happens to spikes at ``t >= max_time``: ``"drop"`` (sparch, where they fall outside
            the tensor), ``"error"``, or ``"last_step"`` (counted in the last step).

    Returns:
        ``(frames, dropped)``: frames ``[num_steps, num_channels]`` float32, and how many spikes were dropped.
    """
    times = np.asarray(times, dtype=np.float64)
    units = np.asarray(units)
    if times.shape != units.shape or times.ndim != 1:
        raise ValueError(f"spike times and units must be 1-D of equal length, got {times.shape} and {units.shape}")
    if units.size and (units.min() < 0 or units.max() >= num_channels):
        bad = units[(units < 0) | (units >= num_channels)]
        raise ValueError(f"spike units must lie in 0..{num_channels - 1}, got {bad.size} outside (e.g. {bad[0]})")
    if times.size and (not np.isfinite(times).all() or times.min() < 0):
        raise ValueError(f"spike times must be finite and >= 0 seconds, got minimum {times.min()}")
    if time_bins == "sparch":
        steps = np.digitize(times, np.linspace(0.0, max_time, num_steps))
    elif time_bins == "uniform":
        steps = np.floor(times * (num_steps / max_time)).astype(np.int64)
    else:
        raise ValueError(f"time_bins must be 'sparch' or 'uniform', got {time_bins!r}")
    late = steps >= num_steps
    dropped = 0
    if late.any():
        if out_of_window == "error":
            raise ValueError(
                f"{int(late.sum())} spikes at or after max_time={max_time} s (latest {times.max():.4f} s); "
                "raise max_time or pass out_of_window='drop' or 'last_step'"
            )
        if out_of_window == "last_step":
            steps = np.minimum(steps, num_steps - 1)
        elif out_of_window == "drop":
            dropped = int(late.sum())
            steps, units = steps[~late], units[~late]
        else:
            raise ValueError(f"out_of_window must be 'drop', 'error' or 'last_step', got {out_of_window!r}")
    flat = steps.astype(np.int64) * num_channels + units.astype(np.int64)
    counts = np.bincount(flat, minlength=num_steps * num_channels).reshape(num_steps, num_channels)
    if values == "binary":
        counts = np.minimum(counts, 1)
    elif values != "counts":
        raise ValueError(f"values must be 'counts' or 'binary', got {values!r}")
    return torch.from_numpy(counts.astype(np.float32)), dropped


def write_spike_file(
    path: str | Path,
    times: list[np.ndarray],
    units: list[np.ndarray],
    labels: np.ndarray,
    *,
    class_names: list[str] | None = None,
    speakers: np.ndarray | None = None,
    times_dtype: type = np.float16,
) -> None:
    """Write samples in the published SHD/SSC HDF5 layout (e.g. a subset, a conversion, or a test file).

    ``spikes/times`` (seconds) and ``spikes/units`` are variable-length datasets with one entry per sample,
    ``labels`` one uint16 per sample; `class_names` and `speakers` go to ``extra/keys`` and ``extra/speaker``.
    Times are stored as `times_dtype` (float16 by default, compact; the loader reads any float dtype), units as
    uint16.
    """
    if not len(times) == len(units) == len(labels):
        raise ValueError(f"need one times, units and label per sample, got {len(times)}, {len(units)}, {len(labels)}")
    with h5py.File(path, "w") as file:
        spikes = file.create_group("spikes")
        for key, arrays, dtype in (("times", times, times_dtype), ("units", units, np.uint16)):
            column = spikes.create_dataset(key, (len(arrays),), dtype=h5py.vlen_dtype(dtype))
            for index, array in enumerate(arrays):
                column[index] = np.asarray(array, dtype=dtype)
        file.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))
        extra = file.create_group("extra")
        if class_names is not None:
            extra.create_dataset("keys", data=[name.encode() for name in class_names])
        if speakers is not None:
            extra.create_dataset("speaker", data=np.asarray(speakers, dtype=np.uint16))


class SpikeTrainFile:
    """Read access to one published SHD/SSC HDF5 file; the file is opened lazily once per process.

    Checks on opening: the file exists, has ``spikes/times``, ``spikes/units`` and ``labels`` of equal length,
    labels in ``0..num_classes-1`` and, when present, ``extra/keys`` with `num_classes` names.
    """

    REQUIRED_KEYS = ("spikes/times", "spikes/units", "labels")

    def __init__(self, path: str | Path, *, dataset_name: str, num_classes: int) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{dataset_name} file not found: {self.path}")
        self._file: h5py.File | None = None
        self._pid = -1
        try:
            with h5py.File(self.path, "r") as file:
                missing = [key for key in self.REQUIRED_KEYS if key not in file]
                if missing:
                    raise KeyError(
                        f"{self.path} lacks HDF5 key(s) {', '.join(missing)}; a published {dataset_name} file has "
                        f"{', '.join(self.REQUIRED_KEYS)} (found top-level keys {sorted(file.keys())})"
                    )
                self.labels = np.asarray(file["labels"][()], dtype=np.int64).reshape(-1)
                lengths = {key: len(file[key]) for key in self.REQUIRED_KEYS}
                class_names = file["extra/keys"][()] if "extra/keys" in file else None
        except OSError as error:
            raise OSError(f"cannot read {self.path} as an HDF5 {dataset_name} file: {error}") from error
        if len(set(lengths.values())) != 1:
            raise ValueError(f"{self.path}: spikes/times, spikes/units and labels differ in length: {lengths}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(
                f"{self.path} names {len(class_names)} classes in extra/keys but {dataset_name} has {num_classes}: "
                "is it a file of the other dataset (SHD has 20 classes, SSC 35)?"
            )
        if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= num_classes):
            raise ValueError(
                f"{self.path} has labels in {self.labels.min()}..{self.labels.max()} but {dataset_name} has "
                f"{num_classes} classes (0..{num_classes - 1}): is it a file of the other dataset?"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def spikes(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(times [N] seconds, units [N])`` of sample `index`."""
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file["spikes/times"][index], self._file["spikes/units"][index]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None, "_pid": -1}


class _SpikingSpeech(Dataset):
    """Items ``(frames [num_steps, 700] float32, label int64 0-d)`` of one split of SHD or SSC."""

    NAME = ""
    PREFIX = ""
    NUM_CLASSES = 0

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        indices: np.ndarray | None,
        num_steps: int,
        max_time: float,
        time_bins: TimeBins,
        values: SpikeValues,
        out_of_window: OutOfWindow,
        file_split: str,
    ) -> None:
        if num_steps < 2 or max_time <= 0:
            raise ValueError(f"need num_steps >= 2 and max_time > 0 s, got {num_steps} and {max_time}")
        self.split = split
        self.file = SpikeTrainFile(
            Path(root) / f"{self.PREFIX}_{file_split}.h5", dataset_name=self.NAME, num_classes=self.NUM_CLASSES
        )
        self.indices = np.arange(len(self.file)) if indices is None else indices
        self.binning = dict(
            num_steps=num_steps, max_time=max_time, time_bins=time_bins, values=values, out_of_window=out_of_window
        )
        self._warned_dropped = False

    @property
    def labels(self) -> np.ndarray:
        """``[N]`` class indices of the samples of this split, in item order."""
        return self.file.labels[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = int(self.indices[item])
        times, units = self.file.spikes(index)
        try:
            frames, dropped = bin_spikes(times, units, **self.binning)
        except ValueError as error:
            raise ValueError(f"{self.file.path}, sample {index}: {error}") from None
        if dropped and not self._warned_dropped:
            self._warned_dropped = True
            warnings.warn(
                f"{self.file.path}, sample {index}: {dropped} spikes at or after max_time="
                f"{self.binning['max_time']} s were dropped, as sparch does (out_of_window='drop'); "
                "this is reported once per dataset",
                stacklevel=2,
            )
        return frames, torch.tensor(self.file.labels[index], dtype=torch.int64)


class SHD(_SpikingSpeech):
    """Spiking Heidelberg Digits: 20 classes (English and German digits), items ``([num_steps, 700], label)``.

    SHD publishes only a train and a test file. ``validation="heldout"`` (default) makes a real validation split:
    a seeded, label-stratified `val_fraction` of ``shd_train.h5`` is ``"val"`` and the rest is ``"train"``, so
    model selection never sees the test set. ``validation="test"`` is sparch's protocol: ``"val"`` is the test file
    and ``"train"`` the whole train file.

    Args:
        root: folder holding ``shd_train.h5`` and ``shd_test.h5``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_steps, max_time, time_bins, values, out_of_window: binning, see `bin_spikes` (defaults = sparch).
        validation, val_fraction, val_seed: the validation protocol above.
    """

    NAME = "SHD"
    PREFIX = "shd"
    NUM_CLASSES = 20

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        num_steps: int = 100,
        max_time: float = 1.4,
        time_bins: TimeBins = "sparch",
        values: SpikeValues = "counts",
        out_of_window: OutOfWindow = "drop",
        validation: Literal["heldout", "test"] = "heldout",
        val_fraction: float = 0.1,
        val_seed: int = 0,
    ) -> None:
        if split not in ("train", "val", "test"):
            raise ValueError(f"SHD split must be 'train', 'val' or 'test', got {split!r}")
        if validation not in ("heldout", "test"):
            raise ValueError(f"SHD validation must be 'heldout' or 'test', got {validation!r}")
        file_split = "test" if split == "test" or (split == "val" and validation == "test") else "train"
        binning = dict(
            num_steps=num_steps, max_time=max_time, time_bins=time_bins, values=values, out_of_window=out_of_window
        )
        super().__init__(root, split, indices=None, file_split=file_split, **binning)
        if file_split == "train" and validation == "heldout":
            held_out = holdout_indices(self.file.labels, fraction=val_fraction, seed=val_seed)
            if split == "val":
                self.indices = held_out
            else:
                self.indices = np.setdiff1d(np.arange(len(self.file)), held_out)


class SSC(_SpikingSpeech):
    """Spiking Speech Commands: 35 classes, items ``([num_steps, 700], label)``, from the published train, valid
    and test files (``"val"`` reads ``ssc_valid.h5``).

    Args:
        root: folder holding ``ssc_train.h5``, ``ssc_valid.h5`` and ``ssc_test.h5``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_steps, max_time, time_bins, values, out_of_window: binning, see `bin_spikes` (defaults = sparch).
    """

    NAME = "SSC"
    PREFIX = "ssc"
    NUM_CLASSES = 35

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        num_steps: int = 100,
        max_time: float = 1.4,
        time_bins: TimeBins = "sparch",
        values: SpikeValues = "counts",
        out_of_window: OutOfWindow = "drop",
    ) -> None:
        files = {"train": "train", "val": "valid", "test": "test"}
        if split not in files:
            raise ValueError(f"SSC split must be 'train', 'val' or 'test', got {split!r}")
        binning = dict(
            num_steps=num_steps, max_time=max_time, time_bins=time_bins, values=values, out_of_window=out_of_window
        )
        super().__init__(root, split, indices=None, file_split=files[split], **binning)
