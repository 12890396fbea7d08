"""HMDB-51, UCF-101 and Kinetics-400 read from tiny real video files written with PyAV in the published layouts:
decoding (seeking, partial decodes, errors naming the file), clip and TSN sampling, transforms, normalisation,
splits and validation protocols."""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from zoo.datasets import HMDB51, UCF101, Kinetics400, get_dataset
from zoo.datasets import video as video_module
from zoo.datasets.video import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    collate_clips,
    consecutive_clip_starts,
    multi_scale_crop,
    normalize,
    read_frame_count,
    read_frames,
    train_clip_transform,
    tsn_indices,
    write_video,
)

HEIGHT, WIDTH = 32, 40


def frames_of(count: int, seed: int = 0) -> np.ndarray:
    """[count, H, W, 3] uint8: frame t is a flat grey of level 6 t + seed (easy to tell apart after lossy coding)."""
    levels = (np.arange(count) * 6 + seed) % 250
    return np.broadcast_to(levels[:, None, None, None], (count, HEIGHT, WIDTH, 3)).astype(np.uint8).copy()


def frame_levels(frames: torch.Tensor) -> list[int]:
    """Mean grey level of each decoded frame [T, 3, H, W], rounded."""
    return [round(v) for v in frames.float().mean((1, 2, 3)).tolist()]


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
@pytest.mark.parametrize("key_frame_interval", [8, 30])
def test_read_frames_decodes_only_what_leads_to_the_requested_frames(tmp_path, suffix, key_frame_interval, monkeypatch):
    path = write_video(tmp_path / f"clip{suffix}", frames_of(40), key_frame_interval=key_frame_interval)
    assert read_frame_count(path) == 40
    everything = read_frames(path, range(40))
    assert everything.shape == (40, 3, HEIGHT, WIDTH) and everything.dtype == torch.uint8
    assert frame_levels(everything) == pytest.approx(list(range(0, 240, 6)), abs=3)
    decoded = []
    original = video_module._frame_index
    monkeypatch.setattr(video_module, "_frame_index", lambda *args: decoded.append(args[0].pts) or original(*args))
    indices = [33, 5, 34, 5, 39]
    assert torch.equal(read_frames(path, indices), everything[indices])
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        keys = video_module._key_frames(container, stream, Fraction(stream.average_rate))
    assert keys[0] == 0 and len(keys) >= 40 // key_frame_interval
    expected, position = 0, -1
    for target in sorted(set(indices)):  # each wanted frame: from the later of (its key frame, the next frame)
        key = max(key for key in keys if key <= target)
        expected += target - max(key, position + 1) + 1
        position = target
    assert len(decoded) == len(set(decoded)) == expected < 40


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_frames_past_the_end_repeat_the_last_decodable_frame(tmp_path, suffix):
    path = write_video(tmp_path / f"clip{suffix}", frames_of(10))
    got = read_frames(path, [8, 9, 12])
    assert torch.equal(got[2], got[1])


def test_missing_empty_and_corrupt_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.avi does not exist"):
        read_frames(tmp_path / "nowhere.avi", [0])
    empty = tmp_path / "empty.avi"
    empty.touch()
    with pytest.raises(ValueError, match="empty.avi is empty"):
        read_frame_count(empty)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="corrupt.mp4"):
        read_frames(corrupt, [0])


def test_consecutive_clips_and_tsn_sampling_rules():
    assert consecutive_clip_starts(40, 16) == [0, 16]
    assert consecutive_clip_starts(32, 16) == [0, 16]
    assert consecutive_clip_starts(15, 16) == []
    assert tsn_indices(64, 16, random=False) == [2 + 4 * s for s in range(16)]
    assert tsn_indices(10, 16, random=False) == [0] * 16
    assert tsn_indices(10, 16, random=True) == [0] * 16
    generator = torch.Generator().manual_seed(0)
    drawn = tsn_indices(70, 16, random=True, generator=generator)
    assert all(4 * s <= index < 4 * s + 4 for s, index in enumerate(drawn))


def test_normalisation_per_channel_and_the_reference_cycling():
    frames = torch.randint(0, 256, (16, 3, 4, 4), dtype=torch.uint8)
    scaled = frames.float() / 255
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    torch.testing.assert_close(normalize(frames), (scaled - mean) / std)
    cycled = normalize(frames, "reference_cycling")
    for t in range(15):
        torch.testing.assert_close(cycled[t], (scaled[t] - IMAGENET_MEAN[t % 3]) / IMAGENET_STD[t % 3])
    torch.testing.assert_close(cycled[15], scaled[15])  # 16 mod 3 = 1 frame left unnormalised


def test_training_crops_are_shared_by_all_frames_of_a_clip():
    torch.manual_seed(0)
    frame = torch.randint(0, 256, (1, 3, 48, 64), dtype=torch.uint8)
    for transform in (lambda clip: train_clip_transform(clip, 24), lambda clip: multi_scale_crop(clip, 24)):
        out = transform(frame.expand(5, -1, -1, -1).contiguous())
        assert out.shape == (5, 3, 24, 24)
        assert all(torch.equal(out[0], out[t]) for t in range(5))


def test_collate_concatenates_clips_and_repeats_targets():
    items = [
        (torch.zeros(2, 4, 3, 8, 8), {"label": 3, "video": 7}),
        (torch.ones(1, 4, 3, 8, 8), {"label": 1, "video": 2}),
    ]
    clips, target = collate_clips(items)
    assert clips.shape == (3, 4, 3, 8, 8)
    assert target["label"].tolist() == [3, 3, 1] and target["video"].tolist() == [7, 7, 2]
    clips, target = collate_clips([(torch.zeros(4, 3, 8, 8), {"label": 0, "video": 0})] * 2)
    assert clips.shape == (2, 4, 3, 8, 8) and target["video"].tolist() == [0, 0]


def write_hmdb(root: Path, fold_lines: dict[str, list[str]], lengths: dict[str, int]) -> None:
    """Action folders with .avi files of the given lengths and the fold-1 split files."""
    for seed, (name, length) in enumerate(sorted(lengths.items())):
        write_video(root / name, frames_of(length, seed))
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True, exist_ok=True)
    for action, lines in fold_lines.items():
        (splits / f"{action}_test_split1.txt").write_text("".join(f"{line} \n" for line in lines))


@pytest.fixture
def hmdb_root(tmp_path) -> Path:
    root = tmp_path / "hmdb51"
    lengths = {
        "brush_hair/a1.avi": 40,
        "brush_hair/a2.avi": 20,
        "brush_hair/a3.avi": 9,
        "brush_hair/a4.avi": 16,
        "wave/b1.avi": 24,
        "wave/b2.avi": 17,
        "wave/b3.avi": 16,
        "wave/b4.avi": 33,
    }
    lines = {
        "brush_hair": ["a1.avi 1", "a2.avi 1", "a3.avi 1", "a4.avi 2"],
        "wave": ["b1.avi 1", "b2.avi 1", "b3.avi 0", "b4.avi 2"],
    }
    write_hmdb(root, lines, lengths)
    return root


def test_hmdb51_reads_the_published_layout(hmdb_root):
    with pytest.warns(UserWarning, match="1 video.* shorter than one clip"):
        train = HMDB51(hmdb_root, "train", validation="test", size=32)
    assert [path.name for path in train.short_videos] == ["a3.avi"]
    # a1: 2 clips, a2: 1, b1: 1, b2: 1 (b3 unused in fold 1, a3 shorter than 16 frames)
    assert len(train) == 5
    clip, target = train[0]
    assert clip.shape == (16, 3, 32, 32) and clip.dtype == torch.float32
    assert target["label"] == 0 and train.videos[target["video"]].name == "a1.avi"
    test = HMDB51(hmdb_root, "test", validation="test", size=32)
    assert [(train_video.name, label) for train_video, label in zip(test.videos, test.labels, strict=True)] == [
        ("a4.avi", 0),
        ("b4.avi", 1),
    ]
    clip, target = test[1]  # b4's second clip is not there (33 frames: clips at 0 and 16)
    assert test.items == [(0, 0), (1, 0), (1, 16)] and target["label"] == 1
    # evaluation: Resize + CenterCrop of a flat frame keeps its level; frame 16 of b4 has level 6 * 16 + 7
    expected = (torch.tensor(6.0 * 16 + 7) / 255 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    assert float(test[2][0][0, 0].mean()) == pytest.approx(float(expected), abs=0.05)


def test_hmdb51_grouped_clips_heldout_validation_and_errors(hmdb_root, tmp_path):
    grouped = HMDB51(hmdb_root, "test", validation="test", size=16, frames_per_clip=8, group_clips=True)
    clips, target = grouped[1]
    assert clips.shape == (4, 8, 3, 16, 16) and target["label"] == 1  # b4: 33 frames -> 4 clips of 8
    single = HMDB51(hmdb_root, "test", validation="test", size=16, frames_per_clip=8)
    torch.testing.assert_close(clips, torch.stack([single[i][0] for i in range(2, 6)]))
    with warnings.catch_warnings():  # the short video a3 is left out of whichever part holds it
        warnings.simplefilter("ignore")
        train = HMDB51(hmdb_root, "train", val_fraction=0.5, size=16)
        val = HMDB51(hmdb_root, "val", val_fraction=0.5, size=16)
    assert not set(train.videos) & set(val.videos)
    assert len(train.videos) + len(val.videos) == 5 and set(val.labels) == {0, 1}  # b3 is unused in fold 1
    assert get_dataset("hmdb51") is HMDB51
    with pytest.raises(ValueError, match="fold must be 1, 2 or 3"):
        HMDB51(hmdb_root, fold=4)
    broken = tmp_path / "broken"
    write_hmdb(broken, {"wave": ["b1.avi 7"]}, {"wave/b1.avi": 16})
    with pytest.raises(ValueError, match=r"wave_test_split1.txt, line 1: expected"):
        HMDB51(broken)
    (broken / "jump").mkdir()
    with pytest.raises(FileNotFoundError, match="jump_test_split1.txt is missing"):
        HMDB51(broken)


def test_hmdb51_unreadable_video_names_the_file(tmp_path):
    root = tmp_path / "hmdb51"
    write_hmdb(root, {"wave": ["b1.avi 1", "b2.avi 1"]}, {"wave/b1.avi": 16})
    with pytest.raises(FileNotFoundError, match=r"wave/b2.avi does not exist"):
        HMDB51(root, validation="test")
    (root / "wave" / "b2.avi").write_bytes(b"not a video at all" * 20)
    with pytest.raises(ValueError, match=r"cannot read video file .*wave/b2.avi"):
        HMDB51(root, validation="test")


def test_ucf101_reads_the_published_layout(tmp_path):
    root = tmp_path / "UCF-101"
    for seed, name in enumerate(["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "Archery/v_Archery_g01_c01.avi"]):
        write_video(root / name, frames_of(20, seed))
    write_video(root / "Archery/v_Archery_g02_c01.avi", frames_of(16, 3))
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    (lists / "trainlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\nArchery/v_Archery_g01_c01.avi 2\n"
    )
    (lists / "testlist01.txt").write_text("Archery/v_Archery_g02_c01.avi\n")
    train = UCF101(root, "train", validation="test", size=32, frames_per_clip=8)
    assert len(train) == 4 and train.labels == [0, 1]
    clip, target = train[3]
    assert clip.shape == (8, 3, 32, 32) and target == {"label": 1, "video": 1}
    test = UCF101(root, "test", size=32, frames_per_clip=8)
    assert test.labels == [1] and len(test) == 2
    (lists / "testlist01.txt").write_text("Bowling/v_Bowling_g01_c01.avi\n")
    with pytest.raises(ValueError, match=r"testlist01.txt, line 1: expected"):
        UCF101(root, "test")
    assert get_dataset("ucf101") is UCF101


def write_kinetics(root: Path, lengths: dict[str, tuple[int, int]], part: str = "train") -> None:
    folder = {"train": "videos_train", "val": "videos_val"}[part]
    lines = []
    for seed, (name, (length, label)) in enumerate(sorted(lengths.items())):
        write_video(root / folder / name, frames_of(length, seed))
        lines.append(f"{name} {label}")
    (root / f"kinetics400_{part}_list_videos.txt").write_text("\n".join(lines) + "\n")


def test_kinetics400_tsn_items_and_normalisations(tmp_path):
    root = tmp_path / "kinetics400"
    write_kinetics(root, {"abseiling/x1.mp4": (32, 0), "zumba/x2.mp4": (8, 399)}, "train")
    write_kinetics(root, {"abseiling/y1.mp4": (40, 0)}, "val")
    test = Kinetics400(root, "test", num_segments=4, size=16, resize=20)
    clip, target = test[0]
    assert clip.shape == (4, 3, 16, 16) and target == {"label": 0, "video": 0}
    # centres of 4 segments of 40 frames: 5, 15, 25, 35 -> grey levels 6 * index
    levels = (clip[:, 0].mean((1, 2)) * IMAGENET_STD[0] + IMAGENET_MEAN[0]) * 255
    assert levels.tolist() == pytest.approx([30, 90, 150, 210], abs=3)
    assert torch.equal(test[0][0], clip)
    cycling = Kinetics400(root, "test", num_segments=4, size=16, resize=20, normalization="reference_cycling")[0][0]
    assert float(cycling[3].mean()) == pytest.approx(210 / 255, abs=0.02)  # the 4th frame stays unnormalised
    train = Kinetics400(root, "train", validation="test", num_segments=4, size=16)
    clip, target = train[1]
    assert clip.shape == (4, 3, 16, 16) and target["label"] == 399
    (root / "kinetics400_val_list_videos.txt").write_text("abseiling/y1.mp4 400\n")
    with pytest.raises(ValueError, match=r"kinetics400_val_list_videos.txt, line 1: expected"):
        Kinetics400(root, "test")
    (root / "kinetics400_val_list_videos.txt").write_text("abseiling/gone.mp4 3\n")
    with pytest.raises(FileNotFoundError, match="gone.mp4 does not exist"):
        Kinetics400(root, "test")[0]
    assert get_dataset("kinetics400") is Kinetics400


def test_frame_counts_are_cached_by_file_stamp(hmdb_root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = HMDB51(hmdb_root, validation="test", cache_dir=cache)
        monkeypatch.setattr(video_module, "read_frame_count", lambda path: pytest.fail(f"{path} probed again"))
        again = HMDB51(hmdb_root, validation="test", cache_dir=cache)
    assert again.clip_starts == first.clip_starts and (cache / "frame_counts.json").is_file()
    write_video(hmdb_root / "wave" / "b1.avi", frames_of(40))  # a changed file is probed again
    monkeypatch.setattr(video_module, "read_frame_count", lambda path: 40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        changed = HMDB51(hmdb_root, validation="test", cache_dir=cache)
    assert changed.clip_starts[first.videos.index(hmdb_root / "wave" / "b1.avi")] == [0, 16]
