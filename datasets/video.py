"""Video files of the action-recognition datasets (HMDB-51, UCF-101, Kinetics-400): decoding, sampling, transforms.

Decoding uses PyAV (FFmpeg bindings). PyAV is maintained, ships FFmpeg in its wheels on every platform (no system
FFmpeg, no CUDA build needed), decodes the published containers (HMDB/UCF ``.avi`` with MPEG-4 part 2 / Xvid,
Kinetics ``.mp4`` with H.264) and writes them too, so the tests make real files with the same library. It also gives
the per-packet key-frame flags and timestamps needed to seek: `read_frames` finds the key frames from the packets
(no decoding), starts decoding at the key frame before the first wanted frame, jumps to a later key frame whenever
that skips frames, and stops after the last wanted frame, so one 16-frame clip never decodes the whole video.
torchcodec would do the same but needs a matching FFmpeg installed on the system.

Frame index k of a stream is round((pts_k - start_time) x time_base x average_rate), i.e. the frame's position at
its native frame rate. A frame count comes from the container header (``stream.frames``), or from counting the
video packets (no decoding) when the header has none. Frames the header promises but the file does not hold (a
truncated tail) are replaced by the last decodable frame.

Items are ``(clip, target)``: ``clip`` uint8 frames made float ``[T, 3, H, W]`` (RGB, /255, normalised), ``target``
``{"label": class index, "video": video index}``; the video index lets video-level metrics average clip logits
per video (`collate_clips`, ``group_clips=True``).
"""

from __future__ import annotations

import bisect
import json
import math
import os
import warnings
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import RandomResizedCrop
from torchvision.transforms.v2 import functional as TF

from zoo.datasets.holdout import Validation, check_validation, published_part, split_indices

__all__ = [
    "ConsecutiveClipVideos",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Normalization",
    "collate_clips",
    "consecutive_clip_starts",
    "eval_clip_transform",
    "frame_counts",
    "multi_scale_crop",
    "normalize",
    "read_frames",
    "read_frame_count",
    "train_clip_transform",
    "tsn_indices",
    "write_video",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MULTI_SCALE_CROP_SCALES = (1.0, 0.875, 0.75, 0.66)

Normalization = Literal["imagenet", "reference_cycling"]


def _checked_path(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"video file {path} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"video file {path} is empty (0 bytes)")
    return path


def _open(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(_checked_path(path)))
    except av.FFmpegError as error:
        raise ValueError(f"cannot read video file {path}: {error}") from None
    if not container.streams.video:
        container.close()
        raise ValueError(f"video file {path} has no video stream")
    return container


def read_frame_count(path: str | Path) -> int:
    """Frames in the first video stream of `path`: the header's count, else the number of video packets.

    Raises:
        FileNotFoundError: no such file. ValueError: empty, unreadable, without video or without frames.
    """
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        count = stream.frames
        if count <= 0:
            try:
                count = sum(1 for packet in container.demux(stream) if packet.size > 0)
            except av.FFmpegError as error:
                raise ValueError(f"cannot read video file {path}: {error}") from None
    if count <= 0:
        raise ValueError(f"video file {path} holds no video frames")
    return count


def frame_counts(paths: Sequence[Path], cache_dir: str | Path | None) -> list[int]:
    """`read_frame_count` of every path, reusing ``<cache_dir>/frame_counts.json`` entries (keyed by absolute path)
    whose file size and modification time are unchanged, and updating the cache (an unreadable cache is rebuilt)."""
    cache_file = None if cache_dir is None else Path(cache_dir) / "frame_counts.json"
    cached: dict[str, list[int]] = {}
    if cache_file is not None and cache_file.is_file():
        try:
            cached = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            cached = {}
    counts, changed = [], False
    for path in paths:
        stat = path.stat() if path.is_file() else None
        key = str(path.resolve())
        entry = cached.get(key)
        if stat is not None and entry is not None and entry[:2] == [stat.st_size, stat.st_mtime_ns]:
            counts.append(entry[2])
            continue
        count = read_frame_count(path)
        counts.append(count)
        if stat is not None:
            cached[key], changed = [stat.st_size, stat.st_mtime_ns, count], True
    if cache_file is not None and changed:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_name(f".{cache_file.name}.{os.getpid()}")
        partial.write_text(json.dumps(cached))
        os.replace(partial, cache_file)
    return counts


def _frame_index(frame: av.VideoFrame, stream: av.video.stream.VideoStream, rate: Fraction) -> int | None:
    if frame.pts is None:
        return None
    start = stream.start_time or 0
    return round((frame.pts - start) * stream.time_base * rate)


def _seek(container: av.container.InputContainer, stream: av.video.stream.VideoStream, index: int, rate: Fraction):
    """Seek to the key frame at or before frame `index`; returns a fresh decoding iterator."""
    timestamp = (stream.start_time or 0) + math.floor(index / rate / stream.time_base)
    container.seek(timestamp, stream=stream, backward=True, any_frame=False)
    return container.decode(stream)


def _key_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream, rate: Fraction) -> list:
    """Sorted frame indices of the key frames, read from the packets (demuxing only, nothing is decoded); empty
    when the packets carry no timestamps."""
    start = stream.start_time or 0
    keys = []
    for packet in container.demux(stream):
        if packet.is_keyframe:
            if packet.pts is None:
                return []
            keys.append(round((packet.pts - start) * stream.time_base * rate))
    return sorted(keys)


def read_frames(path: str | Path, indices: Sequence[int]) -> torch.Tensor:
    """Decode frames `indices` (any order, repeats allowed) of `path`: uint8 ``[len(indices), 3, H, W]`` RGB.

    The key frames are located from the packets first; decoding then starts at the key frame before the first wanted
    frame and jumps (seeks) to a later key frame whenever that skips frames, so only the stretches that lead to
    wanted frames are decoded. Indices past the last decodable frame get the last decodable frame.

    Raises:
        FileNotFoundError: no such file. ValueError: empty or unreadable file, no video stream, no decodable frame.
    """
    path = Path(path)
    if not indices:
        raise ValueError(f"read_frames({path}): no frame indices given")
    if min(indices) < 0:
        raise ValueError(f"read_frames({path}): negative frame index {min(indices)}")
    wanted = sorted(set(indices))
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate or stream.guessed_rate or 0)
        try:
            keys = _key_frames(container, stream, rate) if rate > 0 else []
            frames, last = _decode(container, stream, rate, wanted, keys)
        except av.FFmpegError as error:
            raise ValueError(f"cannot decode video file {path}: {error}") from None
    if last is None:
        raise ValueError(f"video file {path} holds no decodable video frame")
    missing = [index for index in wanted if index not in frames and index < last[0]]
    if missing:
        raise ValueError(f"video file {path}: frames {missing[:5]} could not be decoded (broken stream?)")
    stacked = [frames.get(index, last[1]) for index in indices]
    return torch.from_numpy(np.stack(stacked)).permute(0, 3, 1, 2).contiguous()


def _decode(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    rate: Fraction,
    wanted: list[int],
    keys: list[int],
) -> tuple[dict[int, np.ndarray], tuple[int, np.ndarray] | None]:
    """Frames of `wanted` (sorted) as ``{index: [H, W, 3] uint8}``, and (index, image) of the last decoded frame.

    `keys`: key-frame indices (empty: decode from the start, counting frames when there are no timestamps).
    """
    wanted_set = set(wanted)
    frames: dict[int, np.ndarray] = {}
    recent: tuple[int, av.VideoFrame] | None = None
    sequential = not keys
    decoder = _seek(container, stream, 0, rate) if rate > 0 else container.decode(stream)
    position = -1
    for target in wanted:
        if target <= position:
            continue
        if not sequential:
            key = keys[max(bisect.bisect_right(keys, target) - 1, 0)]
            if key > position:  # jumping to that key frame skips frames the decoder would otherwise decode
                decoder = _seek(container, stream, key, rate)
        for frame in decoder:
            index = None if sequential else _frame_index(frame, stream, rate)
            if index is None:  # no timestamps: count frames from the start (and never seek)
                sequential, index = True, position + 1
            position, recent = index, (index, frame)
            if index in wanted_set:
                frames[index] = frame.to_ndarray(format="rgb24")
            if index >= target:
                break
        else:
            break  # end of stream
    if recent is None:
        return frames, None
    index = recent[0]
    return frames, (index, frames[index] if index in frames else recent[1].to_ndarray(format="rgb24"))


def consecutive_clip_starts(num_frames: int, frames_per_clip: int) -> list[int]:
    """First frames of every non-overlapping run of `frames_per_clip` consecutive frames (torchvision ``VideoClips``
    with step = clip length, as the reference): 0, L, 2L, ... while a whole clip fits; none if the video is shorter
    than one clip."""
    return list(range(0, num_frames - frames_per_clip + 1, frames_per_clip))


def tsn_indices(num_frames: int, segments: int, random: bool, generator: torch.Generator | None = None) -> list[int]:
    """TSN sparse sampling: one frame from each of `segments` equal segments of the video.

    ``random`` (training, and the reference's evaluation): frame s * d + U{0, d - 1} of segment s with
    d = num_frames // segments; a video with fewer frames than segments gives frame 0 for every segment (TSN's rule).
    Otherwise the centre of each segment, int(tick / 2 + tick * s) with tick = num_frames / segments, and frame 0 for
    every segment when num_frames <= segments (TSN's evaluation rule).
    """
    if random:
        duration = num_frames // segments
        if duration == 0:
            return [0] * segments
        offsets = torch.randint(duration, (segments,), generator=generator)
        return [segment * duration + int(offset) for segment, offset in enumerate(offsets)]
    if num_frames <= segments:
        return [0] * segments
    tick = num_frames / segments
    return [int(tick / 2.0 + tick * segment) for segment in range(segments)]


def normalize(frames: torch.Tensor, normalization: Normalization = "imagenet") -> torch.Tensor:
    """uint8 ``[T, 3, H, W]`` -> float32 in [0, 1], then normalised.

    ``"imagenet"``: (x - mean_c) / std_c per RGB channel c. ``"reference_cycling"``: what the reference's Kinetics
    pipeline does (TSN's GroupNormalize walking the first axis of a [T, C, H, W] tensor): frame t < 3 floor(T / 3) is
    normalised as a whole with the statistics of channel t mod 3, and the last T mod 3 frames stay in [0, 1].
    """
    scaled = frames.float() / 255.0
    if normalization == "imagenet":
        return TF.normalize(scaled, list(IMAGENET_MEAN), list(IMAGENET_STD))
    if normalization != "reference_cycling":
        raise ValueError(f"normalization must be 'imagenet' or 'reference_cycling', got {normalization!r}")
    cycled = len(frames) - len(frames) % 3
    mean = torch.tensor(IMAGENET_MEAN).repeat(cycled // 3)[:, None, None, None]
    std = torch.tensor(IMAGENET_STD).repeat(cycled // 3)[:, None, None, None]
    return torch.cat([(scaled[:cycled] - mean) / std, scaled[cycled:]])


def train_clip_transform(frames: torch.Tensor, size: int) -> torch.Tensor:
    """HMDB/UCF training: one RandomResizedCrop(size) (scale 0.08-1, ratio 3/4-4/3) for all frames, then a horizontal
    flip with p = 0.5 (one draw per clip); uint8 ``[T, 3, H, W]`` -> ``[T, 3, size, size]``."""
    top, left, height, width = RandomResizedCrop.get_params(frames, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0))
    frames = TF.resized_crop(frames, top, left, height, width, [size, size], antialias=True)
    return TF.horizontal_flip(frames) if torch.rand(()) < 0.5 else frames


def eval_clip_transform(frames: torch.Tensor, resize: int, size: int) -> torch.Tensor:
    """Resize the short side to `resize`, then centre crop `size` x `size` (uint8 ``[T, 3, H, W]``)."""
    return TF.center_crop(TF.resize(frames, [resize], antialias=True), [size, size])


def multi_scale_crop(frames: torch.Tensor, size: int) -> torch.Tensor:
    """TSN's GroupMultiScaleCrop(size, scales (1, .875, .75, .66), max_distort 1, fixed offsets) + horizontal flip.

    Crop sides are int(min(H, W) x scale) (snapped to `size` when within 3 pixels), one (width, height) pair drawn among
    those whose scale indices differ by at most 1, placed at one of TSN's 13 fixed offsets (corners, centre, edge
    centres, quarter points on a 4 x 4 grid of steps), resized to size x size (bilinear); then a flip with p = 0.5.
    """
    height, width = frames.shape[-2:]
    sides = [int(min(height, width) * scale) for scale in MULTI_SCALE_CROP_SCALES]
    sides = [size if abs(side - size) < 3 else side for side in sides]
    pairs = [(w, h) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= 1]
    crop_w, crop_h = pairs[int(torch.randint(len(pairs), ()))]
    step_w, step_h = (width - crop_w) // 4, (height - crop_h) // 4
    grid = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2), (0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]
    x, y = grid[int(torch.randint(len(grid), ()))]
    frames = TF.resized_crop(frames, y * step_h, x * step_w, crop_h, crop_w, [size, size], antialias=True)
    return TF.horizontal_flip(frames) if torch.rand(()) < 0.5 else frames


def collate_clips(
    items: Sequence[tuple[torch.Tensor, dict[str, int]]],
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Batch ``(clips, target)`` items whose clips are ``[T, 3, H, W]`` (one clip) or ``[N_v, T, 3, H, W]`` (every
    clip of a video): clips concatenated to ``[sum N_v, T, 3, H, W]``, target ``{"label", "video"}`` int64 per clip."""
    clips, labels, videos = [], [], []
    for clip, target in items:
        stacked = clip if clip.dim() == 5 else clip.unsqueeze(0)
        clips.append(stacked)
        labels += [target["label"]] * len(stacked)
        videos += [target["video"]] * len(stacked)
    return torch.cat(clips), {"label": torch.tensor(labels), "video": torch.tensor(videos)}


def write_video(
    path: str | Path, frames: np.ndarray, fps: int = 25, codec: str | None = None, key_frame_interval: int = 0
) -> Path:
    """Write uint8 RGB frames ``[T, H, W, 3]`` (H, W even) as a video file: MPEG-4 part 2 in ``.avi`` (as HMDB/UCF),
    H.264 in ``.mp4`` (as Kinetics), or `codec`; a key frame every `key_frame_interval` frames (0: the encoder's
    default, 12 for MPEG-4 part 2, 250 for x264)."""
    path = Path(path)
    codec = codec or {".avi": "mpeg4", ".mp4": "libx264"}[path.suffix]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1], frames.shape[2]
        stream.pix_fmt = "yuv420p"
        if key_frame_interval:
            stream.gop_size = key_frame_interval
        stream.bit_rate = 8_000_000  # near-lossless for small test frames (MPEG-4 part 2 defaults to 400 kb/s)
        if codec == "libx264":
            stream.options = {"crf": "1"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


class ConsecutiveClipVideos(Dataset):
    """Videos cut into every non-overlapping run of `frames_per_clip` consecutive frames (HMDB-51, UCF-101).

    Subclasses list the published parts' files and labels and call `_setup`. With ``group_clips=False`` (the
    reference) an item is one clip ``([T, 3, size, size], target)``; with ``group_clips=True`` an item is every clip
    of one video ``([N_v, T, 3, size, size], target)`` so that a batch holds whole videos and the video-level metric
    is exact. A video shorter than one clip has no clip and is left out, as torchvision's ``VideoClips`` (which the
    reference uses) leaves it out; `short_videos` lists them and a warning counts them.
    """

    NUM_CLASSES = 0

    def _setup(
        self,
        root: Path,
        split: str,
        parts: dict[str, tuple[list[Path], list[int]]],
        *,
        frames_per_clip: int,
        size: int,
        group_clips: bool,
        validation: Validation,
        val_fraction: float,
        val_seed: int,
        cache_dir: str | Path | None,
    ) -> None:
        check_validation(validation, val_fraction)
        if frames_per_clip < 1 or size < 1:
            raise ValueError(f"frames_per_clip and size must be >= 1, got {frames_per_clip} and {size}")
        files, labels = parts[published_part(split, validation)]
        keep = split_indices(
            np.asarray(labels), split, validation=validation, val_fraction=val_fraction, val_seed=val_seed
        )
        self.root, self.split, self.training = root, split, split == "train"
        self.frames_per_clip, self.size, self.group_clips = frames_per_clip, size, group_clips
        self.videos = [files[i] for i in keep]
        self.labels = [labels[i] for i in keep]
        counts = frame_counts(self.videos, cache_dir)
        self.clip_starts = [consecutive_clip_starts(count, frames_per_clip) for count in counts]
        self.short_videos = [video for video, starts in zip(self.videos, self.clip_starts, strict=True) if not starts]
        if self.short_videos:
            warnings.warn(
                f"{type(self).__name__} {split}: {len(self.short_videos)} video(s) shorter than one clip of "
                f"{frames_per_clip} frames are left out (as the reference), e.g. {self.short_videos[0]}",
                stacklevel=3,
            )
        if group_clips:
            self.items = [(video, -1) for video, starts in enumerate(self.clip_starts) if starts]
        else:
            self.items = [(video, start) for video, starts in enumerate(self.clip_starts) for start in starts]
        self.collate_fn = collate_clips

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, int]]:
        video, start = self.items[index]
        target = {"label": self.labels[video], "video": video}
        length = self.frames_per_clip
        if start >= 0:
            frames = read_frames(self.videos[video], range(start, start + length))
            frames = train_clip_transform(frames, self.size) if self.training else self._eval(frames)
            return normalize(frames), target
        starts = self.clip_starts[video]
        clips = read_frames(self.videos[video], range(starts[-1] + length)).unflatten(0, (len(starts), length))
        transform = (lambda clip: train_clip_transform(clip, self.size)) if self.training else self._eval
        return torch.stack([normalize(transform(clip)) for clip in clips]), target

    def _eval(self, frames: torch.Tensor) -> torch.Tensor:
        return eval_clip_transform(frames, self.size, self.size)
