"""Spiking Heidelberg Digits (SHD) and Spiking Speech Commands (SSC) from their published HDF5 files.

Layout of a dataset folder (Cramer et al. 2020; https://zenkelab.org/resources/spiking-heidelberg-datasets-shd)::

    root/shd_train.h5  root/shd_test.h5                        (SHD: 20 classes, no validation file)
    root/ssc_train.h5  root/ssc_valid.h5  root/ssc_test.h5     (SSC: 35 classes)

Each file holds ``spikes/times`` (one variable-length array of spike times in seconds per sample),
``spikes/units`` (the matching input channels, 0..699) and ``labels`` (one class index per sample); the
``extra/`` group (speakers, class names) is read only for ``extra/keys``, to catch a file of the other dataset.

A sample is binned into ``num_bins`` time steps as in sparch (Bittar & Garner 2022): with the default
``binning="sparch"`` the bin edges are ``linspace(0, window_s, num_bins)`` and a spike at time t goes to step
``digitize(t, edges)``, so step 0 is always empty and steps 1..num_bins-1 are ``window_s / (num_bins - 1)``
wide (14.14 ms for the defaults 100 bins over 1.4 s). ``binning="uniform"`` uses ``num_bins`` equal bins of
``window_s / num_bins`` instead. Spikes in the same step and channel are summed (``values="counts"``, as sparch)
or marked once (``values="binary"``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.datasets.holdout import Validation, check_validation, published_part, split_indices
from zoo.datasets.notices import SharedFlags
from zoo.datasets.options import checked_options

__all__ = ["NUM_CHANNELS", "SHD", "SSC", "SpikeTrainFile", "bin_spikes", "write_spike_file"]

NUM_CHANNELS = 700
"""Input channels of SHD and SSC (the cochlea model's 700 fibres)."""

Binning = Literal["sparch", "uniform"]
SpikeValues = Literal["counts", "binary"]
OutOfWindow = Literal["drop", "error", "last_step"]


def bin_spikes(
    times: np.ndarray,
    units: np.ndarray,
    *,
    num_bins: int = 100,
    window_s: float = 1.4,
    binning: Binning = "sparch",
    values: SpikeValues = "counts",
    out_of_window: OutOfWindow = "drop",
    num_channels: int = NUM_CHANNELS,
) -> tuple[torch.Tensor, int]:
    """Bin one sample's spikes into a dense ``[num_bins, num_channels]`` float32 tensor (no loop over spikes).

    Args:
        times: ``[N]`` spike times in seconds (finite, >= 0).
        units: ``[N]`` channel of each spike, integers in ``0..num_channels-1``.
        num_bins, window_s: number of time bins and the window they cover, in seconds.
        binning: ``"sparch"`` (edges ``linspace(0, window_s, num_bins)``, bin 0 empty) or ``"uniform"``.
        values: ``"counts"`` (spikes per bin and channel) or ``"binary"`` (1 where at least one spike).
        out_of_window: what happens to spikes at ``t >= window_s``: ``"drop"`` (sparch, where they fall outside
            the tensor), ``"error"``, or ``"last_step"`` (counted in the last bin).

    Returns:
        ``(frames, dropped)``: frames ``[num_bins, num_channels]`` float32, and how many spikes were dropped.
    """
    times = np.asarray(times, dtype=np.float64)
    units = np.asarray(units)
    if times.shape != units.shape or times.ndim != 1:
        raise ValueError(f"spike times and units must be 1-D of equal length, got {times.shape} and {units.shape}")
    if units.size and (units.min() < 0 or units.max() >= num_channels):
        bad = units[(units < 0) | (units >= num_channels)]
        raise ValueError(f"spike units must lie in 0..{num_channels - 1}, got {bad.size} outside (e.g. {bad[0]})")
    if times.size and not np.isfinite(times).all():
        bad = times[~np.isfinite(times)]
        raise ValueError(f"spike times must be finite seconds, got {bad.size} non-finite (e.g. {bad[0]})")
    if times.size and times.min() < 0:
        raise ValueError(f"spike times must be >= 0 seconds, got minimum {times.min()}")
    if binning == "sparch":
        steps = np.digitize(times, np.linspace(0.0, window_s, num_bins))
    elif binning == "uniform":
        steps = np.floor(times * (num_bins / window_s)).astype(np.int64)
    else:
        raise ValueError(f"binning must be 'sparch' or 'uniform', got {binning!r}")
    late = steps >= num_bins
    dropped = 0
    if late.any():
        if out_of_window == "error":
            raise ValueError(
                f"{int(late.sum())} spikes at or after window_s={window_s} s (latest {times.max():.4f} s); "
                "raise window_s or pass out_of_window='drop' or 'last_step'"
            )
        if out_of_window == "last_step":
            steps = np.minimum(steps, num_bins - 1)
        elif out_of_window == "drop":
            dropped = int(late.sum())
            steps, units = steps[~late], units[~late]
        else:
            raise ValueError(f"out_of_window must be 'drop', 'error' or 'last_step', got {out_of_window!r}")
    flat = steps.astype(np.int64) * num_channels + units.astype(np.int64)
    counts = np.bincount(flat, minlength=num_bins * num_channels).reshape(num_bins, num_channels)
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
    """Items ``(frames [num_bins, 700] float32, label int64 0-d)`` of one split of SHD or SSC."""

    NAME = ""
    PREFIX = ""
    NUM_CLASSES = 0

    def __init__(self, root: str | Path, split: str, file_part: str, **binning: Any) -> None:
        if binning["num_bins"] < 2 or not binning["window_s"] > 0 or not np.isfinite(binning["window_s"]):
            raise ValueError(
                f"{self.NAME}: need num_bins >= 2 and a finite window_s > 0 s, got {binning['num_bins']} and "
                f"{binning['window_s']}"
            )
        self.split = split
        self.file = SpikeTrainFile(
            Path(root) / f"{self.PREFIX}_{file_part}.h5", dataset_name=self.NAME, num_classes=self.NUM_CLASSES
        )
        self.indices = np.arange(len(self.file))
        self.binning = binning
        self._dropped_reported = SharedFlags(1)

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
        if dropped and dropped == len(times):
            raise ValueError(
                f"{self.file.path}, sample {index}: all {dropped} spikes lie at or after window_s="
                f"{self.binning['window_s']} s (earliest {float(np.min(times)):g}); SHD/SSC spike times are seconds "
                "(recordings last about 1 s): are these milliseconds?"
            )
        if dropped and self._dropped_reported.first():
            warnings.warn(
                f"{self.file.path}, sample {index}: {dropped} spikes at or after window_s="
                f"{self.binning['window_s']} s were dropped, as sparch does (out_of_window='drop'); "
                "this is reported once per dataset",
                stacklevel=2,
            )
        return frames, torch.tensor(self.file.labels[index], dtype=torch.int64)


class SHD(_SpikingSpeech):
    """Spiking Heidelberg Digits: 20 classes (English and German digits), items ``([num_bins, 700], label)``.

    SHD publishes only a train and a test file. ``validation="heldout"`` (default) makes a real validation split:
    a seeded, label-stratified `val_fraction` of ``shd_train.h5`` is ``"val"`` and the rest is ``"train"``, so
    model selection never sees the test set. ``validation="test"`` is sparch's protocol: ``"val"`` is the test file
    and ``"train"`` the whole train file (see `zoo.datasets.holdout`).

    Args:
        root: folder holding ``shd_train.h5`` and ``shd_test.h5``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_bins: time bins (sparch: 100).
        window_s: seconds of each sample that are binned (sparch: 1.4).
        binning: ``"sparch"`` (bin edges ``linspace(0, window_s, num_bins)``, bin 0 empty) or ``"uniform"``.
        values: ``"counts"`` (spikes per bin and channel, sparch) or ``"binary"``.
        out_of_window: spikes at or after `window_s`: ``"drop"`` (sparch; one warning), ``"error"`` or
            ``"last_step"``.
        validation: ``"heldout"`` (a seeded part of the train file is ``"val"``) or ``"test"`` (sparch: the test
            file is ``"val"``).
        val_fraction: share of every class of the train file held out as ``"val"``.
        val_seed: seed of the held-out draw.
    """

    NAME = "SHD"
    PREFIX = "shd"
    NUM_CLASSES = 20

    @checked_options
    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        num_bins: int = 100,
        window_s: float = 1.4,
        binning: Binning = "sparch",
        values: SpikeValues = "counts",
        out_of_window: OutOfWindow = "drop",
        validation: Validation = "heldout",
        val_fraction: float = 0.1,
        val_seed: int = 0,
    ) -> None:
        check_validation(validation, val_fraction)
        binning_options = dict(
            num_bins=num_bins, window_s=window_s, binning=binning, values=values, out_of_window=out_of_window
        )
        super().__init__(root, split, published_part(split, validation), **binning_options)
        self.indices = split_indices(
            self.file.labels, split, validation=validation, val_fraction=val_fraction, val_seed=val_seed
        )


class SSC(_SpikingSpeech):
    """Spiking Speech Commands: 35 classes, items ``([num_bins, 700], label)``, from the published train, valid
    and test files (``"val"`` reads ``ssc_valid.h5``).

    Args:
        root: folder holding ``ssc_train.h5``, ``ssc_valid.h5`` and ``ssc_test.h5``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_bins: time bins (sparch: 100).
        window_s: seconds of each sample that are binned (sparch: 1.4).
        binning: ``"sparch"`` (bin edges ``linspace(0, window_s, num_bins)``, bin 0 empty) or ``"uniform"``.
        values: ``"counts"`` (spikes per bin and channel, sparch) or ``"binary"``.
        out_of_window: spikes at or after `window_s`: ``"drop"`` (sparch; one warning), ``"error"`` or
            ``"last_step"``.
    """

    NAME = "SSC"
    PREFIX = "ssc"
    NUM_CLASSES = 35

    @checked_options
    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        num_bins: int = 100,
        window_s: float = 1.4,
        binning: Binning = "sparch",
        values: SpikeValues = "counts",
        out_of_window: OutOfWindow = "drop",
    ) -> None:
        binning_options = dict(
            num_bins=num_bins, window_s=window_s, binning=binning, values=values, out_of_window=out_of_window
        )
        super().__init__(root, split, {"train": "train", "val": "valid", "test": "test"}[split], **binning_options)
