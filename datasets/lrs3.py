"""LRS3 (Afouras et al., 2018) as RAVEn reads it: mouth-crop videos, 16 kHz audio, SentencePiece unit ids.

On disk (the layout of RAVEn's data module; design note respike_raven.md, sections B.6-B.7)::

    <root>/<csv_dir>/<list>_with_tags_counts_unigram1000.csv   rows ``tag,relative path,frames,unit ids``
    <root>/<video_dir>/<relative path>                          96x96 mouth crops at 25 fps (.avi/.mp4, any codec)
    <root>/<audio_dir>/<relative path without its extension>.wav   16 kHz mono

``<list>`` is ``train`` (433 h) or ``trainval`` (the 30 h low-resource set) for ``split="train"``, ``val`` and
``test`` for the others; unit ids are space-separated (1..1047 for unigram1000); ``frames`` is the video length,
used for batching by total frames (`FrameBudgetBatchSampler`).

Items ``(inputs, target)``: ``target`` the unit ids [L] int64; ``inputs`` by modality

- ``"video"``: frames [T, 88, 88] float32: RGB -> grayscale (0.2989 R + 0.587 G + 0.114 B) / 255, random 88 crop
  + horizontal flip (p 0.5) for training, centre 88 crop otherwise, then (x - 0.421) / 0.165;
- ``"audio"``: waveform [N] float32 (libsndfile's [-1, 1] scale, as torchaudio ``normalize=True``);
- ``"audiovisual"``: both, the waveform cut or zero-padded to T x 640 samples;
- ``"text"``: the unit ids themselves (language-model training, `zoo.train.recipes.raven_lm`): only the CSVs are read,
  no video or audio file is needed or checked.

Training items get RAVEn's time masking (``AdaptiveLengthTimeMask``, zeros after normalisation) when
``augment_time_mask``: for a sequence of n steps (frames, or samples), ``int((n + stride - 0.1) // stride)``
masks; each draws two integers a, b in [0, window): it starts at a uniform position in [0, n - a) and covers b
steps (skipped when a = 0 or a >= n). Window and stride are ``time_mask_window_s`` (0.4 s) and
``time_mask_stride_s`` (1 s) at 25 frames or 16000 samples per second.

`collate_fn` pads a batch to ``({"x": [B, T_max, ...], "lengths": [B], "tokens": [B, L_max]}, tokens)`` with zeros
and -1 (the forward arguments of the RAVEn recognisers, teacher forcing included).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from zoo.datasets.fbank import read_audio
from zoo.datasets.options import checked_options
from zoo.datasets.video import read_frame_count, read_frames, write_video

__all__ = [
    "AUDIO_RATE",
    "CROP_SIZE",
    "LRS3",
    "FrameBudgetBatchSampler",
    "Utterance",
    "crop_mouth_video",
    "crop_mouths",
    "read_lrs3_csv",
    "similarity_transform",
    "smooth_landmarks",
    "time_mask",
    "write_lrs3_csv",
]

VIDEO_FPS, AUDIO_RATE, SAMPLES_PER_FRAME = 25, 16000, 640
CROP_SIZE = 88
VIDEO_MEAN, VIDEO_STD = 0.421, 0.165
GRAYSCALE_WEIGHTS = (0.2989, 0.587, 0.114)
"""ITU-R 601-2 luma weights, as torchvision's Grayscale."""
CSV_SUFFIX = "_with_tags_counts_unigram1000.csv"

Modality = Literal["video", "audio", "audiovisual", "text"]


class Utterance(NamedTuple):
    """One CSV row."""

    tag: str
    path: str
    frames: int
    units: tuple[int, ...]


def read_lrs3_csv(path: str | Path) -> list[Utterance]:
    """Rows ``tag,relative path,frames,unit ids`` of a RAVEn label CSV; a malformed row is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LRS3 label file {path} does not exist")
    rows = []
    with path.open(newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row:
                continue
            if len(row) != 4:
                raise ValueError(f"{path}:{number}: expected 4 fields 'tag,path,frames,unit ids', got {len(row)}")
            tag, relative, frames, units = row
            try:
                count, ids = int(frames), tuple(int(unit) for unit in units.split())
            except ValueError:
                raise ValueError(f"{path}:{number}: frames and unit ids must be integers, got {row[2:]!r}") from None
            if count < 1 or not ids:
                raise ValueError(f"{path}:{number}: needs >= 1 frame and >= 1 unit, got {count} frames, {units!r}")
            rows.append(Utterance(tag, relative, count, ids))
    if not rows:
        raise ValueError(f"LRS3 label file {path} lists no utterance")
    return rows


def write_lrs3_csv(path: str | Path, rows: Sequence[Utterance]) -> Path:
    """Write rows in the label-CSV format (for preparing data and for tests)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        for row in rows:
            writer.writerow([row.tag, row.path, row.frames, " ".join(map(str, row.units))])
    return path


def time_mask(x: torch.Tensor, window: int, stride: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """RAVEn's adaptive-length time masking (module docstring) along axis 0 of `x` [n, ...]: a masked copy."""
    length = x.shape[0]
    masked = x.clone()
    count = int((length + stride - 0.1) // stride)
    if window < 1 or count < 1:
        return masked
    draws = torch.randint(0, window, (count, 2), generator=generator).tolist()
    for start_range, span in draws:
        if start_range == 0 or length - start_range <= 0:
            continue
        start = int(torch.randint(0, length - start_range, (1,), generator=generator))
        masked[start : start + span] = 0
    return masked


def _grayscale(frames: torch.Tensor) -> torch.Tensor:
    """uint8 RGB [T, 3, H, W] -> float32 gray in [0, 1], [T, H, W]."""
    weights = torch.tensor(GRAYSCALE_WEIGHTS, dtype=torch.float32).view(1, 3, 1, 1)
    return (frames.to(torch.float32) / 255.0 * weights).sum(1)


class LRS3(Dataset):
    """LRS3 utterances for RAVEn's VSR/ASR fine-tuning and pre-training (module docstring).

    Args:
        root: folder holding `csv_dir`, `video_dir` and `audio_dir`.
        split: ``"train"``, ``"val"`` or ``"test"``.
        modality: ``"video"`` (VSR), ``"audio"`` (ASR), ``"audiovisual"`` (pre-training) or ``"text"`` (the unit
            ids alone, for language models).
        train_list: label list of the training split: ``"train"`` (433 h) or ``"trainval"`` (30 h low-resource).
        csv_dir: folder of the label CSVs under root.
        video_dir: folder of the mouth-crop videos under root.
        audio_dir: folder of the 16 kHz .wav files under root.
        augment_flip: random horizontal flip (p 0.5) of training videos.
        augment_time_mask: RAVEn's time masking of training inputs.
        time_mask_window_s: longest mask in seconds (0.4; RAVEn's ASR scripts use 0.6).
        time_mask_stride_s: one mask per started stride, in seconds (1.0; ASR scripts 2.0).
        max_frames: batch by total frames (`FrameBudgetBatchSampler`, as RAVEn: 2400 per GPU for training, 500
            for validation) instead of the recipe's ``batch_size``; None: batch by ``batch_size``.
        max_samples: keep only the first N utterances (quick runs).
        check_files: ``"open"``: check that every listed file exists when the dataset opens; ``"first_read"``:
            when it is first read.
    """

    @checked_options
    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        modality: Modality = "video",
        train_list: Literal["train", "trainval"] = "train",
        csv_dir: str = "data_paths",
        video_dir: str = "LRS3_h96w96_avi",
        audio_dir: str = "LRS3_audio",
        augment_flip: bool = True,
        augment_time_mask: bool = True,
        time_mask_window_s: float = 0.4,
        time_mask_stride_s: float = 1.0,
        max_frames: int | None = None,
        max_samples: int | None = None,
        check_files: Literal["open", "first_read"] = "open",
    ) -> None:
        if split not in ("train", "val", "test"):
            raise ValueError(f"LRS3 split must be 'train', 'val' or 'test', got {split!r}")
        if time_mask_window_s < 0 or time_mask_stride_s <= 0:
            raise ValueError(
                f"LRS3 time masks need window >= 0 and stride > 0 s, got {time_mask_window_s}, {time_mask_stride_s}"
            )
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"LRS3 root {self.root} does not exist")
        self.split, self.modality = split, modality
        self.training = split == "train"
        self.augment_flip = augment_flip and self.training
        self.augment_time_mask = augment_time_mask and self.training
        self.window_s, self.stride_s = time_mask_window_s, time_mask_stride_s
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"LRS3 max_frames must be >= 1 or None, got {max_frames}")
        self.max_frames = max_frames
        self.video_root, self.audio_root = self.root / video_dir, self.root / audio_dir
        listed = train_list if split == "train" else split
        self.utterances = read_lrs3_csv(self.root / csv_dir / f"{listed}{CSV_SUFFIX}")[:max_samples]
        self.check_files = check_files
        if check_files == "open":
            for index in range(len(self.utterances)):
                self._check(index)

    def __len__(self) -> int:
        return len(self.utterances)

    @property
    def sizes(self) -> list[int]:
        """Video frames of every utterance (from the CSV), for `FrameBudgetBatchSampler`."""
        return [row.frames for row in self.utterances]

    def batch_sampler(self, world_size: int, rank: int, seed: int, shuffle: bool) -> FrameBudgetBatchSampler | None:
        """This process's batches by total frames when ``max_frames`` is set (`zoo.train.data.dataset_batches`):
        shuffled and padded to equal counts per process for training, in order and unpadded for evaluation."""
        if self.max_frames is None:
            return None
        return FrameBudgetBatchSampler(self.sizes, self.max_frames, shuffle, seed, rank, world_size, pad=shuffle)

    def sample_name(self, index: int) -> str:
        """The utterance's relative path as the CSV lists it (e.g. ``test/0Fi83BHQsMA/00002.mp4``): its name in
        ``python -m zoo.evaluate``'s hypothesis file."""
        return self.utterances[index].path

    def video_path(self, index: int) -> Path:
        return self.video_root / self.utterances[index].path

    def audio_path(self, index: int) -> Path:
        return self.audio_root / Path(self.utterances[index].path).with_suffix(".wav")

    def _check(self, index: int) -> None:
        paths = {"video": [self.video_path(index)], "audio": [self.audio_path(index)], "text": []}.get(
            self.modality, [self.video_path(index), self.audio_path(index)]
        )
        for path in paths:
            if not path.is_file():
                row = self.utterances[index]
                raise FileNotFoundError(f"LRS3: {path} (listed as {row.path!r}) does not exist")

    def _video(self, index: int) -> torch.Tensor:
        path = self.video_path(index)
        gray = _grayscale(read_frames(path, list(range(read_frame_count(path)))))
        height, width = gray.shape[1:]
        if height < CROP_SIZE or width < CROP_SIZE:
            raise ValueError(f"LRS3 video {path} is {height}x{width}, smaller than the {CROP_SIZE}x{CROP_SIZE} crop")
        if self.training:
            top = int(torch.randint(0, height - CROP_SIZE + 1, (1,)))
            left = int(torch.randint(0, width - CROP_SIZE + 1, (1,)))
        else:
            top, left = round((height - CROP_SIZE) / 2), round((width - CROP_SIZE) / 2)
        frames = gray[:, top : top + CROP_SIZE, left : left + CROP_SIZE]
        if self.augment_flip and float(torch.rand(())) < 0.5:
            frames = frames.flip(-1)
        frames = (frames - VIDEO_MEAN) / VIDEO_STD
        if self.augment_time_mask:
            frames = time_mask(frames, int(self.window_s * VIDEO_FPS), int(self.stride_s * VIDEO_FPS))
        return frames.contiguous()

    def _audio(self, index: int, frames: int | None = None) -> torch.Tensor:
        path = self.audio_path(index)
        waveform, rate = read_audio(path)
        if rate != AUDIO_RATE:
            raise ValueError(f"LRS3 audio {path} is sampled at {rate} Hz, expected {AUDIO_RATE} Hz")
        if frames is not None:
            samples = frames * SAMPLES_PER_FRAME
            waveform = torch.nn.functional.pad(waveform[:samples], (0, max(0, samples - waveform.shape[0])))
        if self.augment_time_mask:
            waveform = time_mask(waveform, int(self.window_s * AUDIO_RATE), int(self.stride_s * AUDIO_RATE))
        return waveform

    def __getitem__(self, index: int) -> tuple[torch.Tensor | tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        if self.check_files == "first_read":
            self._check(index)
        units = torch.tensor(self.utterances[index].units, dtype=torch.int64)
        if self.modality == "text":
            return units, units
        if self.modality == "video":
            return self._video(index), units
        if self.modality == "audio":
            return self._audio(index), units
        video = self._video(index)
        return (video, self._audio(index, frames=video.shape[0])), units

    def collate_fn(self, items: Sequence[tuple]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Zero-padded inputs, lengths (frames for video, samples for audio) and -1-padded unit ids (module
        docstring); for ``"audiovisual"`` the inputs are ``{"video", "audio", "lengths" (frames), "tokens"}``, the
        arguments of the pre-training model (the tokens for its online probes); for ``"text"`` ``{"tokens"}``."""
        tokens = _pad([units for _, units in items], -1)
        if self.modality == "audiovisual":
            videos = [inputs[0] for inputs, _ in items]
            inputs = {
                "video": _pad(videos, 0.0),
                "audio": _pad([inputs[1] for inputs, _ in items], 0.0),
                "lengths": torch.tensor([len(video) for video in videos]),
            }
        elif self.modality == "text":
            inputs = {}
        else:
            sequences = [inputs for inputs, _ in items]
            inputs = {"x": _pad(sequences, 0.0), "lengths": torch.tensor([len(sequence) for sequence in sequences])}
        inputs["tokens"] = tokens
        return inputs, tokens


def _pad(sequences: Sequence[torch.Tensor], value: float) -> torch.Tensor:
    return torch.nn.utils.rnn.pad_sequence(list(sequences), batch_first=True, padding_value=value)


class FrameBudgetBatchSampler(Sampler[list[int]]):
    """Batches of utterances whose padded size (longest x count) stays within `max_frames`, as RAVEn's
    ``ByFrameCountSampler`` (fairseq ``batch_by_size``), shared out over DDP processes.

    Every epoch: indices sorted by length, longest first (ties in a random order drawn from ``(seed, epoch)``),
    cut greedily into batches (a batch closes when one more utterance would pass the budget; an utterance longer
    than the budget is a batch alone); then the batch order is shuffled with the same seed (``shuffle=False``:
    neither) and process `rank` of `world_size` takes batches rank, rank + world_size, ... (with ``pad``, the list
    is first padded by repeating its first batches so that every process gets the same number of steps).

    Args:
        sizes: length of every utterance (video frames).
        max_frames: frame budget per batch and process (RAVEn: 2400 for training, 500 for validation).
        shuffle, seed: random tie order and batch order.
        rank, world_size: this process and the number of processes.
        pad: equal batch counts on every process (training); off, every utterance is in exactly one batch.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        max_frames: int,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
    ) -> None:
        if max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size = {world_size})")
        self.sizes = torch.as_tensor(list(sizes), dtype=torch.int64)
        self.max_frames, self.shuffle, self.seed = max_frames, shuffle, seed
        self.rank, self.world_size, self.pad = rank, world_size, pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of `epoch` (call before iterating, as with `DistributedSampler`)."""
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        ties = torch.randperm(len(self.sizes), generator=generator) if self.shuffle else torch.arange(len(self.sizes))
        by_tie = self.sizes[ties]
        order = ties[torch.sort(by_tie, descending=True, stable=True).indices].tolist()
        batches: list[list[int]] = []
        current: list[int] = []
        longest = 0
        for index in order:
            size = int(self.sizes[index])
            if current and max(longest, size) * (len(current) + 1) > self.max_frames:
                batches.append(current)
                current, longest = [], 0
            current.append(index)
            longest = max(longest, size)
        if current:
            batches.append(current)
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        if self.pad:
            total = math.ceil(len(batches) / self.world_size) * self.world_size
            batches += batches[: total - len(batches)]
        return batches[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


# ----------------------------------------------------------------------------------------------------------------
# Mouth-crop preprocessing (design note respike_raven.md, section B.7): ``python -m zoo.datasets.lrs3 crop ...``

STABLE_POINTS = (28, 33, 36, 39, 42, 45, 48, 54)
"""68-point landmark indices aligned to the reference face: nose ridge and tip, eye corners, mouth corners."""
MOUTH_POINTS = slice(48, 68)
WARPED_SIZE, MOUTH_CROP_SIZE, SMOOTHING_MARGIN = 256, 96, 12


def smooth_landmarks(landmarks: np.ndarray, margin: int = SMOOTHING_MARGIN) -> np.ndarray:
    """Landmarks [T, 68, 2] averaged over frames t - margin/2 .. t + margin/2 (cut at the ends), each frame then
    moved back to its own centroid (the original keeps the current frame's position, smooths its shape)."""
    half = margin // 2
    smoothed = np.empty_like(landmarks, dtype=np.float64)
    for t in range(len(landmarks)):
        window = landmarks[max(0, t - half) : t + half + 1].mean(axis=0)
        smoothed[t] = window + landmarks[t].mean(axis=0) - window.mean(axis=0)
    return smoothed


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; Umeyama 1991) taking points `source` [K, 2]
    onto `target` [K, 2], as a 2x3 matrix [s R | t]. (The original uses OpenCV's LMedS-robust estimate of the same
    model; on landmarks without outliers both give this solution.)"""
    mean_s, mean_t = source.mean(0), target.mean(0)
    centred_s, centred_t = source - mean_s, target - mean_t
    covariance = centred_t.T @ centred_s / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / centred_s.var(0).sum()
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mean_t - scale * rotation @ mean_s
    return matrix


def _warp(image: torch.Tensor, matrix: np.ndarray, size: int) -> torch.Tensor:
    """Image [C, H, W] float warped by the 2x3 `matrix` (source pixel -> output pixel, pixel centres at integer
    coordinates) into a [C, size, size] output, bilinear, zeros outside."""
    height, width = image.shape[1:]
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    ys, xs = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    source = inverse @ points  # [2, size * size] source x, y
    grid = np.stack([2 * source[0] / (width - 1) - 1, 2 * source[1] / (height - 1) - 1], axis=-1)
    grid_tensor = torch.from_numpy(grid.reshape(1, size, size, 2)).to(image.dtype)
    return F.grid_sample(image[None], grid_tensor, mode="bilinear", padding_mode="zeros", align_corners=True)[0]


def crop_mouths(frames: np.ndarray, landmarks: np.ndarray, mean_face: np.ndarray) -> np.ndarray:
    """Mouth crops of a face video: frames uint8 [T, H, W, 3], 68-point landmarks [T, 68, 2] (x, y in pixels),
    reference face [68, 2] in a 256 x 256 frame -> uint8 [T, 96, 96, 3].

    Per frame: landmarks smoothed (`smooth_landmarks`), similarity transform of the 8 stable points onto the
    reference face, frame and landmarks warped into the 256 x 256 reference frame, and a 96 x 96 patch cut around
    the mean of the warped mouth landmarks 48-67 (clamped inside the warped frame).
    """
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got shape {frames.shape}")
    if landmarks.shape != (len(frames), 68, 2):
        raise ValueError(f"landmarks must be [T = {len(frames)}, 68, 2], got shape {landmarks.shape}")
    if mean_face.shape != (68, 2):
        raise ValueError(f"the reference face must be [68, 2], got shape {mean_face.shape}")
    smoothed = smooth_landmarks(landmarks.astype(np.float64))
    reference = mean_face.astype(np.float64)[list(STABLE_POINTS)]
    crops = np.empty((len(frames), MOUTH_CROP_SIZE, MOUTH_CROP_SIZE, 3), dtype=np.uint8)
    half = MOUTH_CROP_SIZE // 2
    for t, frame in enumerate(frames):
        matrix = similarity_transform(smoothed[t][list(STABLE_POINTS)], reference)
        warped = _warp(torch.from_numpy(frame).permute(2, 0, 1).double(), matrix, WARPED_SIZE)
        mouth = smoothed[t][MOUTH_POINTS] @ matrix[:, :2].T + matrix[:, 2]
        centre_x, centre_y = np.clip(np.round(mouth.mean(0)).astype(int), half, WARPED_SIZE - half)
        patch = warped[:, centre_y - half : centre_y + half, centre_x - half : centre_x + half]
        crops[t] = patch.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return crops


def crop_mouth_video(video: str | Path, landmarks: str | Path, mean_face: str | Path, out: str | Path) -> Path:
    """Read `video` and its landmarks (``.npy`` [T, 68, 2]), write the mouth crops as lossless FFV1 ``.avi`` at
    25 fps (RAVEn's ``extract_mouths.py`` output)."""
    video = Path(video)
    frames = read_frames(video, list(range(read_frame_count(video)))).permute(0, 2, 3, 1).numpy()
    points = np.load(landmarks)
    if len(points) != len(frames):
        raise ValueError(f"{landmarks}: {len(points)} landmark frames for {len(frames)} video frames in {video}")
    return write_video(out, crop_mouths(frames, points, np.load(mean_face)), fps=VIDEO_FPS, codec="ffv1")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m zoo.datasets.lrs3 crop --videos DIR --landmarks DIR --mean-face FILE --out DIR``: every video under
    --videos (``.mp4``/``.avi``) with a ``.npy`` of the same relative path under --landmarks gets its mouth crops at
    the same relative path under --out (``.avi``)."""
    parser = argparse.ArgumentParser(prog="python -m zoo.datasets.lrs3", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    crop = commands.add_parser("crop", help="cut 96 x 96 mouth crops from face videos and 68-point landmarks")
    crop.add_argument("--videos", type=Path, required=True)
    crop.add_argument("--landmarks", type=Path, required=True)
    crop.add_argument("--mean-face", type=Path, required=True, help="reference face, .npy [68, 2] in 256 x 256")
    crop.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args(argv)
    videos = sorted(p for p in arguments.videos.rglob("*") if p.suffix in (".mp4", ".avi"))
    if not videos:
        parser.error(f"no .mp4 or .avi video under {arguments.videos}")
    for path in videos:
        relative = path.relative_to(arguments.videos)
        landmarks = (arguments.landmarks / relative).with_suffix(".npy")
        if not landmarks.is_file():
            raise FileNotFoundError(f"landmarks {landmarks} for video {path} do not exist")
        crop_mouth_video(path, landmarks, arguments.mean_face, (arguments.out / relative).with_suffix(".avi"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
