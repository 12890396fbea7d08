"""UCF-101 (Soomro et al., 2012): 13,320 clips of 101 human actions, read as published.

On disk::

    <root>/<Action>/v_<Action>_g<group>_c<clip>.avi    one folder of .avi files per action (101 folders)
    <root>/ucfTrainTestlist/classInd.txt               "<index> <Action>" per line, index 1..101
    <root>/ucfTrainTestlist/trainlist0<k>.txt          "<Action>/<video>.avi <index>" per line, k = 1, 2, 3
    <root>/ucfTrainTestlist/testlist0<k>.txt           "<Action>/<video>.avi" per line

Labels are classInd's index - 1 (the sorted action names, as torchvision's ``UCF101`` that the ReSpike reference
uses). Clips: every non-overlapping run of `frames_per_clip` consecutive frames
(`zoo.datasets.video.ConsecutiveClipVideos`).
"""

from __future__ import annotations

from pathlib import Path

from zoo.datasets.holdout import Validation
from zoo.datasets.options import checked_options
from zoo.datasets.video import ConsecutiveClipVideos

__all__ = ["LISTS_FOLDER", "UCF101"]

LISTS_FOLDER = "ucfTrainTestlist"


class UCF101(ConsecutiveClipVideos):
    """UCF-101 clips ``([T, 3, size, size] float32 ImageNet-normalised, {"label", "video"})``.

    Args:
        fold: official split 1, 2 or 3 (torchvision's and the reference's default is 1).
        frames_per_clip: frames per clip, T (16 in the reference).
        size: side of the square frames: training RandomResizedCrop(size) + flip, evaluation Resize(size) +
            CenterCrop(size) (224 in the reference).
        group_clips: an item is every clip of one video ([N_v, T, 3, size, size]) instead of one clip.
        validation: "heldout": "val" is a seeded, class-stratified share of the fold's training videos and "train"
            the rest; "test": "val" is the fold's test list (the reference selects on it).
        val_fraction: share of the training videos held out for "val".
        val_seed: seed of the held-out draw.
        lists_dir: folder of classInd.txt and the train/test lists (default <root>/ucfTrainTestlist).
        cache_dir: folder where the videos' frame counts are cached (keyed by file size and time).
    """

    NUM_CLASSES = 101

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
        lists_dir: str | Path | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        root = Path(root)
        if fold not in (1, 2, 3):
            raise ValueError(f"UCF101 fold must be 1, 2 or 3, got {fold}")
        if not root.is_dir():
            raise FileNotFoundError(f"UCF-101 root {root} does not exist (expected <root>/<Action>/<video>.avi)")
        lists = Path(lists_dir) if lists_dir is not None else root / LISTS_FOLDER
        self._setup(
            root,
            split,
            _parts(root, lists, fold),
            frames_per_clip=frames_per_clip,
            size=size,
            group_clips=group_clips,
            validation=validation,
            val_fraction=val_fraction,
            val_seed=val_seed,
            cache_dir=cache_dir,
        )


def _read_list(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise FileNotFoundError(f"UCF-101 list {path} is missing (the official {LISTS_FOLDER} files)")
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def _parts(root: Path, lists: Path, fold: int) -> dict[str, tuple[list[Path], list[int]]]:
    """{"train": (files, labels), "test": (files, labels)} of `fold`; errors name the offending file and line."""
    class_file = lists / "classInd.txt"
    classes = {}
    for number, fields in enumerate(_read_list(class_file), start=1):
        if len(fields) != 2 or not fields[0].isdigit():
            raise ValueError(f"{class_file}, line {number}: expected '<index> <Action>', got {' '.join(fields)!r}")
        classes[fields[1]] = int(fields[0]) - 1
    parts: dict[str, tuple[list[Path], list[int]]] = {}
    for part, name in (("train", f"trainlist0{fold}.txt"), ("test", f"testlist0{fold}.txt")):
        files, labels = [], []
        for number, fields in enumerate(_read_list(lists / name), start=1):
            action = fields[0].split("/")[0]
            if len(fields) not in (1, 2) or action not in classes:
                raise ValueError(
                    f"{lists / name}, line {number}: expected '<Action>/<video>.avi [index]' with an action of "
                    f"classInd.txt, got {' '.join(fields)!r}"
                )
            files.append(root / fields[0])
            labels.append(classes[action])
        parts[part] = (files, labels)
    return parts
