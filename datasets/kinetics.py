"""Kinetics-400 (Kay et al., 2017) in mmaction2's video layout, sampled as TSN (the ReSpike reference's loader).

On disk (mmaction2's "Preparing Kinetics")::

    <root>/kinetics400_train_list_videos.txt    "<path> <label>" per line, label 0..399, path relative to videos_train
    <root>/kinetics400_val_list_videos.txt      the same for the validation videos (relative to videos_val)
    <root>/videos_train/...mp4
    <root>/videos_val/...mp4

An item is `num_segments` frames, one from each of that many equal segments of the whole video
(`zoo.datasets.video.tsn_indices`): at a random offset in training, at the segment centres in evaluation
(``eval_sampling="random"``: random offsets as the reference, whose validation takes the random path too). A video
with no more frames than segments gives its first frame for every segment (TSN's rule). Transforms: training
multi-scale crop (1, .875, .75, .66) + flip, evaluation Resize(resize) + CenterCrop(size).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.datasets.holdout import Validation, check_validation, published_part, split_indices
from zoo.datasets.options import checked_options
from zoo.datasets.video import (
    Normalization,
    collate_clips,
    eval_clip_transform,
    multi_scale_crop,
    normalize,
    read_frame_count,
    read_frames,
    tsn_indices,
)

__all__ = ["LIST_FILES", "Kinetics400"]

LIST_FILES = {"train": "kinetics400_train_list_videos.txt", "test": "kinetics400_val_list_videos.txt"}
VIDEO_FOLDERS = {"train": "videos_train", "test": "videos_val"}


class Kinetics400(Dataset):
    """Kinetics-400 frame sets ``([num_segments, 3, size, size] float32, {"label", "video"})``.

    The published validation list is this loader's "test" part (Kinetics' test labels are not public).

    Args:
        num_segments: frames per item, one per equal segment (16 in the reference, independent of its -T).
        size: side of the square frames (224).
        resize: evaluation short side before the centre crop (256).
        eval_sampling: "center" (deterministic segment centres) or "random" (random offsets, as the reference).
        normalization: "imagenet" (per RGB channel) or "reference_cycling" (the reference's per-frame cycling of the
            channel statistics, the last T mod 3 frames unnormalised; see `zoo.datasets.video.normalize`).
        validation: "heldout": "val" is a seeded, class-stratified share of the training list and "train" the rest;
            "test": "val" is the validation list (the reference selects on it).
        val_fraction: share of the training videos held out for "val".
        val_seed: seed of the held-out draw.
    """

    NUM_CLASSES = 400

    @checked_options
    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        num_segments: int = 16,
        size: int = 224,
        resize: int = 256,
        eval_sampling: Literal["center", "random"] = "center",
        normalization: Normalization = "imagenet",
        validation: Validation = "heldout",
        val_fraction: float = 0.01,
        val_seed: int = 0,
    ) -> None:
        check_validation(validation, val_fraction)
        if num_segments < 1 or size < 1 or resize < size:
            raise ValueError(
                f"Kinetics400 needs num_segments >= 1 and resize >= size >= 1, got {num_segments}, {resize}, {size}"
            )
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"Kinetics-400 root {root} does not exist (expected {LIST_FILES['train']} there)")
        part = published_part(split, validation)
        files, labels = _read_list(root, part)
        keep = split_indices(
            np.asarray(labels), split, validation=validation, val_fraction=val_fraction, val_seed=val_seed
        )
        self.videos = [files[i] for i in keep]
        self.labels = [labels[i] for i in keep]
        self.training = split == "train"
        self.num_segments, self.size, self.resize = num_segments, size, resize
        self.random_offsets = self.training or eval_sampling == "random"
        self.normalization = normalization
        self.collate_fn = collate_clips

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, int]]:
        path = self.videos[index]
        indices = tsn_indices(read_frame_count(path), self.num_segments, self.random_offsets)
        frames = read_frames(path, indices)
        if self.training:
            frames = multi_scale_crop(frames, self.size)
        else:
            frames = eval_clip_transform(frames, self.resize, self.size)
        return normalize(frames, self.normalization), {"label": self.labels[index], "video": index}


def _read_list(root: Path, part: str) -> tuple[list[Path], list[int]]:
    """Files and labels of one mmaction2 video list; errors name the file and line."""
    list_file = root / LIST_FILES[part]
    if not list_file.is_file():
        raise FileNotFoundError(f"Kinetics-400 list {list_file} is missing (mmaction2's '<path> <label>' list)")
    files, labels = [], []
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.rsplit(maxsplit=1)
        if len(fields) != 2 or not fields[1].isdigit() or not 0 <= int(fields[1]) < Kinetics400.NUM_CLASSES:
            raise ValueError(f"{list_file}, line {number}: expected '<path> <label 0..399>', got {line!r}")
        files.append(root / VIDEO_FOLDERS[part] / fields[0])
        labels.append(int(fields[1]))
    return files, labels
