"""LRS3 in RAVEn's layout: tiny real files (FFV1 .avi mouth crops, 16 kHz .wav of eSpeak NG speaking each
transcript, label CSVs of a tiny unit list) written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from espeak_speech import SPEECH_RATE, speech_16k

from zoo.datasets import LRS3, get_dataset
from zoo.datasets.lrs3 import (
    CSV_SUFFIX,
    SAMPLES_PER_FRAME,
    FrameBudgetBatchSampler,
    Utterance,
    crop_mouths,
    similarity_transform,
    time_mask,
    write_lrs3_csv,
)
from zoo.datasets.lrs3 import main as lrs3_main
from zoo.datasets.video import read_frames, write_video
from zoo.decoding import UnitList
from zoo.train import get_recipe
from zoo.train.data import evaluation_loader, start_epoch, training_loader
from zoo.train.distributed import World

STD = 0.165
UNITS = UnitList(
    {
        1: "\u2581ONE",
        2: "\u2581TWO",
        3: "\u2581THREE",
        4: "\u2581FOUR",
        5: "\u2581SEVEN",
        7: "\u2581RED",
        9: "\u2581BLUE",
    }
)
"""The tiny unit list of the label CSVs (a SentencePiece-style list: ``\u2581`` starts a word)."""
UTTERANCES = [("spk1/00001", (5, 7, 9)), ("spk1/00002", (3,)), ("spk2/00001", (4, 4, 1, 2))]
"""(stem, unit ids): eSpeak NG speaks each transcript at 250 words per minute (0.2 .. 0.7 s)."""
WORDS_PER_MINUTE = 250


def spoken_frames(index: int, samples: int) -> int:
    """Video frames of utterance `index` with `samples` of speech: the last one is cut to whole 40 ms frames, the
    others get one frame more than the speech fills, so the audiovisual items both pad and cut audio."""
    return samples // SAMPLES_PER_FRAME + (index < len(UTTERANCES) - 1)


def gray_frames(frames: int, seed: int) -> np.ndarray:
    """Smooth grayscale frames [T, 96, 96] uint8 (a gradient plus a moving square, distinct per frame)."""
    rng = np.random.default_rng(seed)
    base = np.add.outer(np.arange(96), np.arange(96)).astype(np.float64)
    video = np.empty((frames, 96, 96), dtype=np.uint8)
    for t in range(frames):
        image = 40 + base * 0.8 + rng.normal(0, 1, (96, 96))
        image[10 + t : 30 + t, 50:70] = 230
        video[t] = np.clip(image, 0, 255).round()
    return video


def write_lrs3(root: Path) -> dict[str, np.ndarray]:
    """Every split lists the same three utterances; returns the written frames and waveforms by stem."""
    written = {}
    rows = []
    for index, (stem, units) in enumerate(UTTERANCES):
        waveform = speech_16k(UNITS.text(units).lower(), words_per_minute=WORDS_PER_MINUTE).numpy()
        frames = spoken_frames(index, len(waveform))
        video = gray_frames(frames, index)
        write_video(root / "LRS3_h96w96_avi" / f"{stem}.avi", np.repeat(video[..., None], 3, -1), codec="ffv1")
        (root / "LRS3_audio" / stem).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(root / "LRS3_audio" / f"{stem}.wav", waveform, SPEECH_RATE, subtype="PCM_16")
        written[stem] = video
        written[stem + ".wav"] = soundfile.read(root / "LRS3_audio" / f"{stem}.wav", dtype="float32")[0]
        rows.append(Utterance("lrs3", f"{stem}.avi", frames, units))
    for listed in ("train", "trainval", "val", "test"):
        write_lrs3_csv(root / "data_paths" / f"{listed}{CSV_SUFFIX}", rows)
    return written


@pytest.fixture(scope="module")
def lrs3_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("lrs3")
    return root, write_lrs3(root)


def normalised(pixels: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(pixels).float() / 255 - 0.421) / STD


def test_test_split_gives_centre_crops_and_units(lrs3_root) -> None:
    root, written = lrs3_root
    dataset = get_dataset("lrs3")(root, "test")
    sizes = [len(written[stem]) for stem, _ in UTTERANCES]
    assert len(dataset) == 3 and dataset.sizes == sizes
    frames, units = dataset[0]
    assert frames.shape == (sizes[0], 88, 88) and frames.dtype == torch.float32
    assert units.tolist() == [5, 7, 9]
    expected = normalised(written["spk1/00001"][:, 4:92, 4:92])
    assert (frames - expected).abs().max() < 3 / 255 / STD  # FFV1 stores YUV: RGB <-> YUV rounding only


def test_training_crops_flips_and_masks(lrs3_root) -> None:
    root, written = lrs3_root
    dataset = LRS3(root, "train", augment_time_mask=False)
    video = normalised(written["spk1/00001"])
    seen_flip = set()
    torch.manual_seed(0)
    for _ in range(4):
        frames, _ = dataset[0]
        matches = [
            (top, left, flip)
            for top in range(9)
            for left in range(9)
            for flip in (False, True)
            if (
                (
                    video[:, top : top + 88, left : left + 88].flip(-1)
                    if flip
                    else video[:, top : top + 88, left : left + 88]
                )
                - frames
            )
            .abs()
            .max()
            < 3 / 255 / STD
        ]
        assert len(matches) == 1
        seen_flip.add(matches[0][2])
    assert seen_flip == {False, True}
    masked = LRS3(root, "train", augment_flip=False, time_mask_window_s=0.4, time_mask_stride_s=0.2)
    torch.manual_seed(1)
    frames, _ = masked[0]
    zero_frames = (frames == 0).flatten(1).all(1)
    assert zero_frames.any() and not zero_frames.all()


def test_audio_and_audiovisual_items(lrs3_root) -> None:
    root, written = lrs3_root
    audio = LRS3(root, "val", modality="audio")
    waveform, units = audio[1]
    torch.testing.assert_close(waveform, torch.from_numpy(written["spk1/00002.wav"]))
    assert units.tolist() == [3]
    both = LRS3(root, "test", modality="audiovisual")
    (video, audio_padded), _ = both[0]  # the speech ends inside the last frame: zero-padded to whole frames
    spoken, frames = written["spk1/00001.wav"], len(written["spk1/00001"])
    assert 0 < frames * 640 - len(spoken) < 640
    assert video.shape[0] == frames and audio_padded.shape == (frames * 640,)
    torch.testing.assert_close(audio_padded[: len(spoken)], torch.from_numpy(spoken))
    assert (audio_padded[len(spoken) :] == 0).all()
    (video, audio_cut), _ = both[2]  # the speech runs past the last frame: cut to whole frames
    spoken, frames = written["spk2/00001.wav"], len(written["spk2/00001"])
    assert 0 < len(spoken) - frames * 640 < 640
    assert video.shape[0] == frames and audio_cut.shape == (frames * 640,)
    torch.testing.assert_close(audio_cut, torch.from_numpy(spoken)[: frames * 640])


def test_collate_pads_inputs_lengths_and_units(lrs3_root) -> None:
    root, written = lrs3_root
    dataset = LRS3(root, "test")
    inputs, target = dataset.collate_fn([dataset[0], dataset[1]])
    long, short = len(written["spk1/00001"]), len(written["spk1/00002"])
    assert inputs["x"].shape == (2, long, 88, 88) and inputs["lengths"].tolist() == [long, short] and short < long
    assert (inputs["x"][1, short:] == 0).all()
    assert target.tolist() == [[5, 7, 9], [3, -1, -1]] and torch.equal(inputs["tokens"], target)


def test_bad_files_are_named(lrs3_root, tmp_path: Path) -> None:
    root, _ = lrs3_root
    (tmp_path / "data_paths").mkdir()
    (tmp_path / "data_paths" / f"test{CSV_SUFFIX}").write_text("lrs3,a.avi,12\n")
    with pytest.raises(ValueError, match=r"test_with_tags_counts_unigram1000.csv:1: expected 4 fields"):
        LRS3(tmp_path, "test")
    (tmp_path / "data_paths" / f"test{CSV_SUFFIX}").write_text("lrs3,missing/x.avi,12,1 2\n")
    with pytest.raises(FileNotFoundError, match=r"missing/x.avi.*does not exist"):
        LRS3(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="LRS3 label file"):
        LRS3(root, "test", csv_dir="nowhere")


def test_time_mask_follows_the_original_rule() -> None:
    x = torch.ones(50, 2)
    generator = torch.Generator().manual_seed(3)
    masked = time_mask(x, window=10, stride=25, generator=generator)
    generator = torch.Generator().manual_seed(3)
    draws = torch.randint(0, 10, (2, 2), generator=generator).tolist()  # int((50 + 25 - 0.1) // 25) = 2 masks
    expected = torch.ones(50, 2)
    for start_range, span in draws:
        if start_range > 0:
            start = int(torch.randint(0, 50 - start_range, (1,), generator=generator))
            expected[start : start + span] = 0
    torch.testing.assert_close(masked, expected)
    assert torch.equal(time_mask(x, window=0, stride=25), x)


def test_frame_budget_batches_cover_every_utterance_once() -> None:
    sizes = [30, 155, 80, 80, 12, 200, 95, 40, 60, 150, 20, 75]
    sampler = FrameBudgetBatchSampler(sizes, max_frames=300, seed=1)
    batches = list(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(len(sizes)))
    assert all(max(sizes[i] for i in batch) * len(batch) <= 300 for batch in batches)
    sampler.set_epoch(1)
    assert list(sampler) != batches and len(sampler) == len(batches)
    shards = [list(FrameBudgetBatchSampler(sizes, 300, seed=1, rank=r, world_size=3)) for r in range(3)]
    assert len({len(shard) for shard in shards}) == 1
    assert {i for shard in shards for batch in shard for i in batch} == set(range(len(sizes)))
    assert list(FrameBudgetBatchSampler(sizes, 100, shuffle=False))[0] == [5]  # longer than the budget: alone


def synthetic_face_video(frames: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A reference face [68, 2] in 256 x 256, landmarks of a head moving through a 120 x 160 video (scale 0.5,
    rotated 15 degrees, translated per frame) and the video [T, 120, 160, 3]: a bright disc on the mouth centre,
    a dimmer one on the nose tip (landmark 33)."""
    rng = np.random.default_rng(0)
    face = rng.uniform(70, 190, (68, 2))
    face[48:68] = np.array([128.0, 185.0]) + rng.uniform(-12, 12, (20, 2))
    face[33] = (128.0, 140.0)
    angle = np.deg2rad(15)
    rotation = 0.5 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    video = np.zeros((frames, 120, 160, 3), dtype=np.uint8)
    landmarks = np.empty((frames, 68, 2))
    ys, xs = np.mgrid[0:120, 0:160]
    for t in range(frames):
        landmarks[t] = face @ rotation.T + np.array([30.0 + 2 * t, 5.0 + t])
        for point, value in ((landmarks[t, 48:68].mean(0), 250), (landmarks[t, 33], 120)):
            video[t][(xs - point[0]) ** 2 + (ys - point[1]) ** 2 <= 9] = value
    return face, landmarks, video


def test_similarity_transform_recovers_a_known_transform() -> None:
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 100, (8, 2))
    angle = 0.3
    matrix = np.array(
        [[1.7 * np.cos(angle), -1.7 * np.sin(angle), 4.0], [1.7 * np.sin(angle), 1.7 * np.cos(angle), -2]]
    )
    moved = points @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(similarity_transform(points, moved), matrix, atol=1e-9)


def test_mouth_crops_are_centred_on_the_mouth(tmp_path: Path) -> None:
    face, landmarks, video = synthetic_face_video()
    crops = crop_mouths(video, landmarks, face)
    assert crops.shape == (6, 96, 96, 3)
    nose = np.round(face[33] - face[48:68].mean(0) + 48).astype(int)  # the nose disc, in crop coordinates
    for crop in crops[..., 0].astype(int):
        assert crop[46:51, 46:51].min() > 200  # the mouth disc (radius 3 px, twice as large after the warp)
        assert 60 < crop[nose[1], nose[0]] < 180
        assert crop[:20].max() == 0 or crop[:, :20].max() == 0  # away from the markers: background
    np.save(tmp_path / "face.npy", face)
    (tmp_path / "landmarks" / "spk").mkdir(parents=True)
    np.save(tmp_path / "landmarks" / "spk" / "001.npy", landmarks)
    write_video(tmp_path / "videos" / "spk" / "001.mp4", video)
    args = ["crop", "--videos", str(tmp_path / "videos"), "--landmarks", str(tmp_path / "landmarks")]
    assert lrs3_main([*args, "--mean-face", str(tmp_path / "face.npy"), "--out", str(tmp_path / "crops")]) == 0
    written = read_frames(tmp_path / "crops" / "spk" / "001.avi", list(range(6)))
    assert written.shape == (6, 3, 96, 96) and written[:, 0, 46:51, 46:51].min() > 180
    with pytest.raises(ValueError, match=r"landmarks must be \[T = 6, 68, 2\]"):
        crop_mouths(video, landmarks[:5], face)


def test_engine_loaders_batch_lrs3_by_total_frames(lrs3_root) -> None:
    """With max_frames the training loader takes the dataset's batches (padded batch <= budget, every utterance
    once per epoch) and the evaluation loaders of 2 processes see every utterance exactly once."""
    root, written = lrs3_root
    sizes = sorted(len(written[stem]) for stem, _ in UTTERANCES)
    budget = 2 * sizes[1]  # batches [longest] and [middle, shortest]
    assert sizes[1] < sizes[2] <= budget
    recipe = get_recipe("raven-vsr-base-lrs3")
    dataset = LRS3(root, "test", max_frames=budget)
    loader, sampler = training_loader(dataset, recipe, World(rank=0, local_rank=0, size=1), 0, 0, False)
    start_epoch(loader, sampler, 0, 0, World(rank=0, local_rank=0, size=1))
    seen = []
    for inputs, _ in loader:
        assert inputs["x"].shape[0] * inputs["x"].shape[1] <= budget
        seen += inputs["lengths"].tolist()
    assert sorted(seen) == sizes and len(loader) == 2
    shares = []
    for rank in range(2):
        batches = evaluation_loader(dataset, 8, World(rank=rank, local_rank=rank, size=2), 0, False)
        shares += [length for inputs, _ in batches for length in inputs["lengths"].tolist()]
    assert sorted(shares) == sizes
    assert LRS3(root, "test").batch_sampler(1, 0, 0, True) is None  # no max_frames: batch_size
    with pytest.raises(ValueError, match="max_frames must be >= 1"):
        LRS3(root, "test", max_frames=0)
