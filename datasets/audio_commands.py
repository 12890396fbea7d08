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
(25 ms windows every 10 ms at 16 kHz). With ``resample=True`` (default) audio at another rate is resampled to
16 kHz first; ``resample=False`` is sparch's pipeline, which computes the features as if every file were 16 kHz:
the published HD audio is 48 kHz, so sparch's HD frames are 8.3 ms windows every 3.3 ms of speech, with mel bands
three times higher in frequency (the sparch HD recipes use ``resample=False``; see the README). Sequences differ in
length; batch them with the dataset's `collate_fn` (`zoo.datasets.padding.pad_features`), which pads with zeros to
the longest item as sparch does and, with ``lengths=True``, also returns every item's length so that a model can
mask the padding.

Files are checked when the dataset opens (``check_files="open"``: every header is read: readable, decodable, one
channel, samples enough for a frame and, with ``resample=False``, the published sample rate) or, for very large
sets, as each is first read (``check_files="first_read"``). ``skip_unreadable=True`` leaves failing files out with
one warning listing them instead of raising.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.datasets.fbank import FEATURE_RATE, FRAME_LENGTH_MS, NUM_MEL_BINS, audio_header, log_mel_fbank, read_audio
from zoo.datasets.holdout import Validation, check_validation, published_part, split_indices
from zoo.datasets.notices import UnreadableSamples, warn_skipped
from zoo.datasets.options import checked_options
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


CheckFiles = Literal["open", "first_read"]


def _read_list(path: Path, what: str) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{what} list not found: {path}")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def check_audio_file(path: Path, *, published_rate: int, resample: bool) -> None:
    """Check one audio file's header (no samples decoded); `ValueError`/`FileNotFoundError` naming the file.

    The header must be readable, hold one channel and at least one 25 ms frame of samples, and, without
    resampling, have the published rate `published_rate` (features computed as if 16 kHz are only comparable
    between files of one rate).
    """
    header = audio_header(path)
    if header.channels != 1:
        raise ValueError(f"expected mono audio in {path}, got {header.channels} channels")
    if header.frames == 0:
        raise ValueError(f"audio file {path} holds no samples (header only)")
    if not resample and header.samplerate != published_rate:
        raise ValueError(
            f"audio file {path} is {header.samplerate} Hz, but the published files are {published_rate} Hz and "
            "resample=False computes every file's features as if it were 16 kHz (sparch); pass resample=True"
        )
    rate = header.samplerate if not resample else FEATURE_RATE
    samples = header.frames if not resample else header.frames * FEATURE_RATE / header.samplerate
    frame = rate * FRAME_LENGTH_MS / 1000 if resample else FEATURE_RATE * FRAME_LENGTH_MS / 1000
    if samples < frame:
        raise ValueError(
            f"audio file {path} holds {header.frames} samples at {header.samplerate} Hz, shorter than one "
            f"{FRAME_LENGTH_MS:g} ms frame"
        )


class _FbankDataset(Dataset):
    """Items ``(log-mel features [frames, 40], label)`` of a list of audio files."""

    PUBLISHED_RATE = FEATURE_RATE

    def _setup(
        self,
        files: list[Path],
        labels: Sequence[int],
        *,
        num_mel_bins: int,
        resample: bool,
        lengths: bool,
        check_files: CheckFiles,
        skip_unreadable: bool,
    ) -> None:
        if num_mel_bins < 1:
            raise ValueError(f"{type(self).__name__}: num_mel_bins must be >= 1, got {num_mel_bins}")
        self.num_mel_bins = num_mel_bins
        self.resample = resample
        self.lengths = lengths
        self.check_files = check_files
        labels = list(labels)
        missing = [str(path) for path in files if not path.is_file()]
        if missing and not skip_unreadable:
            raise FileNotFoundError(
                f"{type(self).__name__}: {len(missing)} audio files listed but not found, e.g. {missing[0]}"
            )
        if check_files == "open":
            problems, keep = [], []
            for index, path in enumerate(files):
                try:
                    check_audio_file(path, published_rate=self.PUBLISHED_RATE, resample=resample)
                except (OSError, ValueError) as error:
                    if not skip_unreadable:
                        raise
                    problems.append(str(error))
                else:
                    keep.append(index)
            warn_skipped(type(self).__name__, problems)
            files, labels = [files[i] for i in keep], [labels[i] for i in keep]
        self.files = files
        self.labels = np.asarray(labels, dtype=np.int64)
        self._reader = UnreadableSamples(type(self).__name__, len(files), skip=skip_unreadable)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._reader.read(index, self._item)

    def _item(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.files[index]
        if self.check_files == "first_read":
            check_audio_file(path, published_rate=self.PUBLISHED_RATE, resample=self.resample)
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
    is the test list and ``"train"`` the whole train list; see `zoo.datasets.holdout`).

    Args:
        root: folder with ``train_filenames.txt``, ``test_filenames.txt`` and ``audio/``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        validation: ``"heldout"`` (a seeded part of the train list is ``"val"``) or ``"test"`` (sparch: the test
            list is ``"val"``).
        val_fraction: share of every class of the train list held out as ``"val"``.
        val_seed: seed of the held-out draw.
        num_mel_bins: filterbank channels (40 in sparch).
        resample: resample audio that is not 16 kHz to 16 kHz first; ``False`` is sparch, which computes the
            features of the published 48 kHz files as if they were 16 kHz.
        lengths: `collate_fn` also returns the sequence lengths, for models that mask padding (sparch does not).
        check_files: ``"open"``: read every audio header when the dataset opens; ``"first_read"``: when a file is
            first read (very large sets).
        skip_unreadable: leave out files that fail the checks, with one warning listing them (default: error).
    """

    NUM_CLASSES = 20
    PUBLISHED_RATE = 48000

    @checked_options
    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        validation: Validation = "heldout",
        val_fraction: float = 0.1,
        val_seed: int = 0,
        num_mel_bins: int = NUM_MEL_BINS,
        resample: bool = True,
        lengths: bool = False,
        check_files: CheckFiles = "open",
        skip_unreadable: bool = False,
    ) -> None:
        check_validation(validation, val_fraction)
        root = Path(root)
        part = published_part(split, validation)
        names = _read_list(root / f"{part}_filenames.txt", f"HD {part} file")
        labels = [heidelberg_digit_label(name) for name in names]
        keep = split_indices(
            np.asarray(labels), split, validation=validation, val_fraction=val_fraction, val_seed=val_seed
        )
        names, labels = [names[i] for i in keep], [labels[i] for i in keep]
        self._setup(
            [root / "audio" / name for name in names],
            labels,
            num_mel_bins=num_mel_bins,
            resample=resample,
            lengths=lengths,
            check_files=check_files,
            skip_unreadable=skip_unreadable,
        )


class SpeechCommands(_FbankDataset):
    """Google Speech Commands v0.02 as log-mel features; ``"val"``/``"test"`` are the files named in
    ``validation_list.txt``/``testing_list.txt`` and ``"train"`` every other WAV of the word folders.

    Label map: a sample's label is the position of its word in `words`. By default `words` is the 35 words of
    v0.02 in sorted order (`SPEECH_COMMANDS_WORDS`, as sparch's sorted folders) and every one must have a folder.
    ``words=("yes", "no", ...)`` (or ``"yes,no,..."``) loads only those words, labelled 0, 1, ... in that order, from
    a folder that may hold any subset; list entries of other words are left out. The map is `word_labels`.

    Args:
        root: the extracted ``speech_commands_v0.02`` folder.
        split: ``"train"``, ``"val"`` or ``"test"``.
        words: the words to load, in label order (a tuple or a comma-separated string); ``None``: all 35.
        num_mel_bins: filterbank channels (40 in sparch).
        resample: resample audio that is not 16 kHz to 16 kHz first (the published files are all 16 kHz).
        lengths: `collate_fn` also returns the sequence lengths, for models that mask padding (sparch does not).
        check_files: ``"open"``: read every audio header when the dataset opens; ``"first_read"``: when a file is
            first read (very large sets).
        skip_unreadable: leave out files that fail the checks, with one warning listing them (default: error).
    """

    NUM_CLASSES = len(SPEECH_COMMANDS_WORDS)
    PUBLISHED_RATE = 16000

    @checked_options
    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        words: tuple[str, ...] | str | None = None,
        num_mel_bins: int = NUM_MEL_BINS,
        resample: bool = True,
        lengths: bool = False,
        check_files: CheckFiles = "open",
        skip_unreadable: bool = False,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"Speech Commands folder not found: {root}")
        folders = {path.name for path in root.iterdir() if path.is_dir() and not path.name.startswith(("_", "."))}
        if words is None:
            chosen = SPEECH_COMMANDS_WORDS
            missing = sorted(set(chosen) - folders)
            unknown = sorted(folders - set(chosen))
            if missing or unknown:
                hint = (
                    f"; to load the words present, pass words={','.join(sorted(folders & set(chosen)))}"
                    if missing and not unknown and folders & set(chosen)
                    else ""
                )
                raise ValueError(
                    f"{root} is not a Speech Commands v0.02 folder: "
                    + (f"missing word folders {missing}" if missing else "")
                    + ("; " if missing and unknown else "")
                    + (f"unexpected folders {unknown}" if unknown else "")
                    + hint
                )
        else:
            chosen = (
                tuple(part.strip() for part in words.split(",") if part.strip()) if isinstance(words, str) else words
            )
            if not chosen or len(set(chosen)) != len(chosen):
                raise ValueError(f"SpeechCommands words must be distinct and not empty, got {words!r}")
            missing = [word for word in chosen if word not in folders]
            if missing:
                raise ValueError(f"{root} has no folder for the word(s) {missing} of words={chosen}")
        self.words = tuple(chosen)
        self.word_labels = {word: label for label, word in enumerate(self.words)}
        listed = {
            "val": _read_list(root / "validation_list.txt", "Speech Commands validation"),
            "test": _read_list(root / "testing_list.txt", "Speech Commands testing"),
        }
        if split == "train":
            held = set(listed["val"]) | set(listed["test"])
            names = sorted(
                f"{word}/{path.name}"
                for word in self.words
                for path in (root / word).glob("*.wav")
                if f"{word}/{path.name}" not in held
            )
        else:
            names = listed[split]
            outside = [name for name in names if name.split("/", 1)[0] not in self.word_labels]
            if words is None and outside:
                raise ValueError(
                    f"Speech Commands {split} list names files outside the 35 word folders, e.g. {outside[0]!r}"
                )
            names = [name for name in names if name.split("/", 1)[0] in self.word_labels]
        files = [root / name for name in names]
        labels = [self.word_labels[name.split("/", 1)[0]] for name in names]
        self.NUM_CLASSES = len(self.words)
        self._setup(
            files,
            labels,
            num_mel_bins=num_mel_bins,
            resample=resample,
            lengths=lengths,
            check_files=check_files,
            skip_unreadable=skip_unreadable,
        )
