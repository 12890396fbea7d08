"""Heidelberg Digits (HD) and Google Speech Commands v0.02 (SC) audio, as 40-bin log-mel filterbank sequences.

Published layouts::

    HD root/                                   (hd_audio.tar.gz, Cramer et al. 2020; 20 classes)
        train_filenames.txt  test_filenames.txt      one audio file name per line
        audio/lang-english_speaker-03_trial-7_digit-4.flac ...
    SC root/                                   (speech_commands_v0.02.tar.gz, Warden 2018; 35 classes)
        validation_list.txt  testing_list.txt        one "word/file.wav" per line
        backward/  bed/  ...  zero/                   one folder of 16 kHz WAV files per word
        _background_noise_/                          noise recordings, not samples (ignored)

Items are ``(features [frames, 40] float32, label int64 0-d)``: features from `zoo.datasets.fbank.log_mel_fbank`
(25 ms windows every 10 ms at 16 kHz; other sample rates are resampled). Sequences differ in length; batch them
with the dataset's `collate_fn` (`zoo.datasets.padding.pad_features`), which pads with zeros to the longest item
as sparch does and, with ``lengths=True``, also returns every item's length so that a model can mask the padding.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.datasets.fbank import NUM_MEL_BINS, log_mel_fbank, read_audio
from zoo.datasets.holdout import holdout_indices
from zoo.datasets.padding import pad_features

__all__ = ["SPEECH_COMMANDS_WORDS", "HeidelbergDigits", "SpeechCommands", "heidelberg_digit_label"]

SPEECH_COMMANDS_WORDS = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go", "happy",
    "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven", "sheila", "six", "stop",
    "three", "tree", "two", "up", "visual", "wow", "yes", "zero",
)  # fmt: skip
"""The 35 words of Speech Commands v0.02 in sorted order; a word's index is its label (as sparch's sorted folders)."""

_HD_NAME = re.compile(r"lang-(english|german)_speaker-\d+_trial-\d+_digit-(\d)\.flac")


def heidelberg_digit_label(name: str) -> int:
    """Class of an HD file name: the digit for English (0..9), the digit + 10 for German (10..19), as sparch."""
    match = _HD_NAME.fullmatch(name)
    if match is None:
        raise ValueError(
            f"HD file name {name!r} does not follow lang-<english|german>_speaker-<n>_trial-<n>_digit-<d>.flac"
        )
    return int(match.group(2)) + (10 if match.group(1) == "german" else 0)


def _read_list(path: Path, what: str) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{what} list not found: {path}")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class _FbankDataset(Dataset):
    """Items ``(log-mel features [frames, 40], label)`` of a list of audio files."""

    def __init__(
        self, files: list[Path], labels: list[int], *, num_mel_bins: int, resample: bool, lengths: bool
    ) -> None:
        self.files = files
        self.labels = np.asarray(labels, dtype=np.int64)
        self.num_mel_bins = num_mel_bins
        self.resample = resample
        self.lengths = lengths

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.files[index]
        waveform, rate = read_audio(path)
        try:
            features = log_mel_fbank(waveform, rate, num_mel_bins=self.num_mel_bins, resample=self.resample)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        return features, torch.tensor(self.labels[index], dtype=torch.int64)

    def collate_fn(
        self, items: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[torch.Tensor | tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Zero-padded batch ``(features [B, T_max, 40], labels [B])``; with ``lengths=True`` the input is
        ``(features, lengths [B])`` (see `zoo.datasets.padding.pad_features`)."""
        return pad_features(items, with_lengths=self.lengths)


class HeidelbergDigits(_FbankDataset):
    """Heidelberg Digits audio (20 classes: English digits 0..9, German digits 10..19) as log-mel features.

    HD publishes a train and a test list only. ``validation="heldout"`` (default) holds out a seeded, label-
    stratified `val_fraction` of the train list as ``"val"``; ``validation="test"`` is sparch's protocol (``"val"``
    is the test list and ``"train"`` the whole train list).

    Args:
        root: folder with ``train_filenames.txt``, ``test_filenames.txt`` and ``audio/``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        validation, val_fraction, val_seed: the validation protocol above.
        num_mel_bins: filterbank channels (40 in sparch).
        resample: resample audio that is not 16 kHz (``False``: sparch, which computes the features as if it were).
        lengths: `collate_fn` also returns the sequence lengths, for models that mask padding (sparch does not).
    """

    NUM_CLASSES = 20

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        validation: Literal["heldout", "test"] = "heldout",
        val_fraction: float = 0.1,
        val_seed: int = 0,
        num_mel_bins: int = NUM_MEL_BINS,
        resample: bool = True,
        lengths: bool = False,
    ) -> None:
        if split not in ("train", "val", "test"):
            raise ValueError(f"HeidelbergDigits split must be 'train', 'val' or 'test', got {split!r}")
        if validation not in ("heldout", "test"):
            raise ValueError(f"HeidelbergDigits validation must be 'heldout' or 'test', got {validation!r}")
        root = Path(root)
        list_split = "test" if split == "test" or (split == "val" and validation == "test") else "train"
        names = _read_list(root / f"{list_split}_filenames.txt", f"HD {list_split} file")
        labels = [heidelberg_digit_label(name) for name in names]
        if list_split == "train" and validation == "heldout":
            held_out = holdout_indices(np.asarray(labels), fraction=val_fraction, seed=val_seed)
            keep = held_out if split == "val" else np.setdiff1d(np.arange(len(names)), held_out)
            names, labels = [names[i] for i in keep], [labels[i] for i in keep]
        files = [root / "audio" / name for name in names]
        missing = [str(path) for path in files if not path.is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} HD audio files listed but not found, e.g. {missing[0]}")
        super().__init__(files, labels, num_mel_bins=num_mel_bins, resample=resample, lengths=lengths)


class SpeechCommands(_FbankDataset):
    """Google Speech Commands v0.02 (35 words) as log-mel features; ``"val"``/``"test"`` are the files named in
    ``validation_list.txt``/``testing_list.txt`` and ``"train"`` every other WAV of the word folders.

    Args:
        root: the extracted ``speech_commands_v0.02`` folder.
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_mel_bins: filterbank channels (40 in sparch).
        resample: resample audio that is not 16 kHz (the published files are all 16 kHz).
        lengths: `collate_fn` also returns the sequence lengths, for models that mask padding (sparch does not).
    """

    NUM_CLASSES = len(SPEECH_COMMANDS_WORDS)

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        num_mel_bins: int = NUM_MEL_BINS,
        resample: bool = True,
        lengths: bool = False,
    ) -> None:
        if split not in ("train", "val", "test"):
            raise ValueError(f"SpeechCommands split must be 'train', 'val' or 'test', got {split!r}")
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"Speech Commands folder not found: {root}")
        folders = {path.name for path in root.iterdir() if path.is_dir() and not path.name.startswith(("_", "."))}
        missing = sorted(set(SPEECH_COMMANDS_WORDS) - folders)
        unknown = sorted(folders - set(SPEECH_COMMANDS_WORDS))
        if missing or unknown:
            raise ValueError(
                f"{root} is not a Speech Commands v0.02 folder: "
                + (f"missing word folders {missing}" if missing else "")
                + ("; " if missing and unknown else "")
                + (f"unexpected folders {unknown}" if unknown else "")
            )
        listed = {
            "val": _read_list(root / "validation_list.txt", "Speech Commands validation"),
            "test": _read_list(root / "testing_list.txt", "Speech Commands testing"),
        }
        if split == "train":
            held = set(listed["val"]) | set(listed["test"])
            names = sorted(
                f"{word}/{path.name}"
                for word in SPEECH_COMMANDS_WORDS
                for path in (root / word).glob("*.wav")
                if f"{word}/{path.name}" not in held
            )
        else:
            names = listed[split]
        words = [name.split("/", 1)[0] for name in names]
        bad = [name for name, word in zip(names, words, strict=True) if word not in SPEECH_COMMANDS_WORDS]
        if bad:
            raise ValueError(f"Speech Commands {split} list names files outside the 35 word folders, e.g. {bad[0]!r}")
        files = [root / name for name in names]
        absent = [str(path) for path in files if not path.is_file()]
        if absent:
            raise FileNotFoundError(f"{len(absent)} Speech Commands files listed but not found, e.g. {absent[0]}")
        labels = [SPEECH_COMMANDS_WORDS.index(word) for word in words]
        super().__init__(files, labels, num_mel_bins=num_mel_bins, resample=resample, lengths=lengths)
