"""HMDB-51 (Kuehne et al., ICCV 2011): 6,766 clips of 51 human actions, read as published.

On disk::

    <root>/<action>/<video>.avi                              one folder of .avi files per action (51 folders)
    <root>/testTrainMulti_7030_splits/<action>_test_split<k>.txt   the official splits, k = 1, 2, 3

A split file lists ``<video>.avi <id>`` per line: id 1 = training, 2 = testing, 0 = unused in fold k. Labels are the
indices of the action folders in sorted order (as torchvision's ``HMDB51``, which the ReSpike reference uses).
Clips: every non-overlapping run of `frames_per_clip` consecutive frames (`zoo.datasets.video.ConsecutiveClipVideos`).
"""

from __future__ import annotations

from pathlib import Path

from zoo.datasets.holdout import Validation
from zoo.datasets.options import checked_options
from zoo.datasets.video import ConsecutiveClipVideos

__all__ = ["HMDB51", "SPLITS_FOLDER"]

SPLITS_FOLDER = "testTrainMulti_7030_splits"


class HMDB51(ConsecutiveClipVideos):
    """HMDB-51 clips ``([T, 3, size, size] float32 ImageNet-normalised, {"label", "video"})``.

    Args:
        fold: official split 1, 2 or 3 (torchvision's and the reference's default is 1).
        frames_per_clip: frames per clip, T (16 in the reference).
        size: side of the square frames: training RandomResizedCrop(size) + flip, evaluation Resize(size) +
            CenterCrop(size) (224 in the reference).
        group_clips: an item is every clip of one video ([N_v, T, 3, size, size]) instead of one clip.
        validation: "heldout": "val" is a seeded, class-stratified share of the fold's training videos and "train"
            the rest; "test": "val" is the fold's test part (the reference selects on it).
        val_fraction: share of the training videos held out for "val".
        val_seed: seed of the held-out draw.
        splits_dir: folder of the split files (default <root>/testTrainMulti_7030_splits).
        cache_dir: folder where the videos' frame counts are cached (keyed by file size and time).
    """

    NUM_CLASSES = 51

    @checked_options
    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        fold: int = 1,
        frames_per_clip: int = 16,
        size: int = 224,
        group_clips: bool = False,
        validation: Validation = "heldout",
        val_fraction: float = 0.1,
        val_seed: int = 0,
        splits_dir: str | Path | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        root = Path(root)
        if fold not in (1, 2, 3):
            raise ValueError(f"HMDB51 fold must be 1, 2 or 3, got {fold}")
        if not root.is_dir():
            raise FileNotFoundError(f"HMDB-51 root {root} does not exist (expected <root>/<action>/<video>.avi)")
        splits = Path(splits_dir) if splits_dir is not None else root / SPLITS_FOLDER
        self._setup(
            root,
            split,
            _parts(root, splits, fold),
            frames_per_clip=frames_per_clip,
            size=size,
            group_clips=group_clips,
            validation=validation,
            val_fraction=val_fraction,
            val_seed=val_seed,
            cache_dir=cache_dir,
        )


def _parts(root: Path, splits: Path, fold: int) -> dict[str, tuple[list[Path], list[int]]]:
    """{"train": (files, labels), "test": (files, labels)} of `fold`; errors name the offending file."""
    actions = sorted(path.name for path in root.iterdir() if path.is_dir() and path.name != splits.name)
    if not actions:
        raise ValueError(f"HMDB-51 root {root} holds no action folders")
    if not splits.is_dir():
        raise FileNotFoundError(f"HMDB-51 split folder {splits} does not exist (the official {SPLITS_FOLDER})")
    parts: dict[str, tuple[list[Path], list[int]]] = {"train": ([], []), "test": ([], [])}
    for label, action in enumerate(actions):
        split_file = splits / f"{action}_test_split{fold}.txt"
        if not split_file.is_file():
            raise FileNotFoundError(f"HMDB-51 split file {split_file} is missing (one per action folder and fold)")
        for number, line in enumerate(split_file.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise ValueError(f"{split_file}, line {number}: expected '<video>.avi <0|1|2>', got {line!r}")
            if fields[1] == "0":
                continue
            part = parts["train" if fields[1] == "1" else "test"]
            part[0].append(root / action / fields[0])
            part[1].append(label)
    return parts
