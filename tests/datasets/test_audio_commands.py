"""Heidelberg Digits / Speech Commands on real speech: espeak-ng digits and words stored under tests/assets/speech
(16 kHz FLAC and WAV, one 8 kHz FLAC resampled from the 16 kHz one; tests/assets/speech/README.md says how they were
made), laid out in the published folder structures; plus speech synthesised here at eSpeak NG's native 22.05 kHz
(`espeak_speech`), which the datasets resample, compared with the stored words and, where sox is installed, with
sox's conversion of the same synthesis.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from espeak_speech import speech
from torch.utils.data import DataLoader

from zoo.datasets import HeidelbergDigits, SpeechCommands
from zoo.datasets.audio_commands import SPEECH_COMMANDS_WORDS, heidelberg_digit_label
from zoo.datasets.fbank import log_mel_fbank, read_audio
from zoo.layers.valid_steps import valid_mask

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "speech"
LOW_BINS = slice(0, 28)
"""Mel bins 0..27 lie below 3.9 kHz, inside the 4 kHz band that an 8 kHz recording keeps."""

HD_FILES = {
    "lang-english_speaker-00_trial-0_digit-1.flac": "one_16k.flac",
    "lang-english_speaker-00_trial-0_digit-2.flac": "two_16k.flac",
    "lang-german_speaker-00_trial-0_digit-3.flac": "drei_16k.flac",
    "lang-english_speaker-01_trial-0_digit-1.flac": "one_8k.flac",
}


def make_hd(root: Path, train: list[str], test: list[str]) -> Path:
    (root / "audio").mkdir(parents=True)
    for name, asset in HD_FILES.items():
        shutil.copy(ASSETS / asset, root / "audio" / name)
    (root / "train_filenames.txt").write_text("\n".join(train) + "\n")
    (root / "test_filenames.txt").write_text("\n".join(test) + "\n")
    return root


def make_sc(root: Path, files: dict[str, str], val: list[str], test: list[str]) -> Path:
    """Speech Commands v0.02 layout: all 35 word folders, the listed files, both lists and background noise."""
    for word in SPEECH_COMMANDS_WORDS:
        (root / word).mkdir(parents=True)
    (root / "_background_noise_").mkdir()
    shutil.copy(ASSETS / "no_16k.wav", root / "_background_noise_" / "white_noise.wav")
    for name, asset in files.items():
        shutil.copy(ASSETS / asset, root / name)
    (root / "validation_list.txt").write_text("".join(f"{name}\n" for name in val))
    (root / "testing_list.txt").write_text("".join(f"{name}\n" for name in test))
    return root


def test_fbank_frames_and_resampling_on_real_speech() -> None:
    waveform, rate = read_audio(ASSETS / "one_16k.flac")
    assert rate == 16000 and waveform.dtype == torch.float32 and 0.05 < waveform.abs().max() <= 1
    features = log_mel_fbank(waveform, rate)
    assert features.shape == (1 + (waveform.shape[0] - 400) // 160, 40)
    low_rate, rate_8k = read_audio(ASSETS / "one_8k.flac")
    assert rate_8k == 8000
    resampled = log_mel_fbank(low_rate, rate_8k)
    assert resampled.shape == features.shape, "8 kHz audio is resampled to 16 kHz before 25 ms / 10 ms framing"
    same_word = (resampled[:, LOW_BINS] - features[:, LOW_BINS]).abs().mean()
    other = log_mel_fbank(*read_audio(ASSETS / "two_16k.flac"))
    frames = min(len(other), len(features))
    other_word = (other[:frames, LOW_BINS] - features[:frames, LOW_BINS]).abs().mean()
    assert same_word < 0.1 < 1.0 < other_word
    as_if_16k = log_mel_fbank(low_rate, rate_8k, resample=False)
    assert as_if_16k.shape == (1 + (low_rate.shape[0] - 400) // 160, 40), "sparch's behaviour: no resampling"


def test_frames_hop_10_ms_and_silence_sits_at_the_log_floor() -> None:
    waveform, rate = read_audio(ASSETS / "yes_16k.wav")
    features = log_mel_fbank(waveform, rate)
    delayed = log_mel_fbank(torch.cat([torch.zeros(1600), waveform]), rate)
    assert len(delayed) == len(features) + 10, "100 ms of silence adds ten 10 ms frames"
    torch.testing.assert_close(delayed[10:], features)
    assert delayed[:7].max() < -15 < -10 < features.mean(dim=1).min(), "silence sits at log(float eps), speech above"


def test_heidelberg_digit_labels() -> None:
    assert heidelberg_digit_label("lang-english_speaker-00_trial-0_digit-7.flac") == 7
    assert heidelberg_digit_label("lang-german_speaker-11_trial-39_digit-0.flac") == 10
    with pytest.raises(ValueError, match="does not follow"):
        heidelberg_digit_label("digit-7.flac")


def test_heidelberg_digits_items_and_padded_batches(tmp_path: Path) -> None:
    names = list(HD_FILES)
    root = make_hd(tmp_path, train=names[:3], test=[names[3], names[2]])
    test = HeidelbergDigits(root, "test")
    assert test.labels.tolist() == [1, 13]
    features, label = test[0]
    assert features.shape[1] == 40 and int(label) == 1
    reference = log_mel_fbank(*read_audio(ASSETS / "one_16k.flac"))
    assert (features[:, LOW_BINS] - reference[:, LOW_BINS]).abs().mean() < 0.1, "the 8 kHz file is resampled"
    expected_lengths = [len(test[0][0]), len(test[1][0])]
    assert expected_lengths[0] != expected_lengths[1]
    batch, labels = next(iter(DataLoader(test, batch_size=2, collate_fn=test.collate_fn)))
    assert batch.shape == (2, max(expected_lengths), 40) and labels.tolist() == [1, 13]
    masked = HeidelbergDigits(root, "test", lengths=True)
    (padded, lengths), _ = next(iter(DataLoader(masked, batch_size=2, collate_fn=masked.collate_fn)))
    assert torch.equal(padded, batch) and lengths.tolist() == expected_lengths
    mask = valid_mask(lengths, batch.shape[1], batch_first=True)
    assert mask.sum(dim=1).tolist() == expected_lengths
    assert torch.all(batch[~mask] == 0) and torch.equal(batch[1, : lengths[1]], test[1][0])


def test_heidelberg_digits_validation_protocols(tmp_path: Path) -> None:
    names = list(HD_FILES)
    root = make_hd(tmp_path, train=names, test=names[:1])
    train, val = HeidelbergDigits(root, "train", val_fraction=0.5), HeidelbergDigits(root, "val", val_fraction=0.5)
    assert len(val) == 1 and len(train) == 3, "one of the two 'one' files held out, single-file classes kept"
    assert {path.name for path in train.files}.isdisjoint(path.name for path in val.files)
    original = HeidelbergDigits(root, "val", validation="test")
    assert [path.name for path in original.files] == names[:1]


def test_speech_commands_splits_labels_and_background_noise(tmp_path: Path) -> None:
    files = {"yes/a_nohash_0.wav": "yes_16k.wav", "no/b_nohash_0.wav": "no_16k.wav"}
    files |= {"yes/c_nohash_0.wav": "yes_16k.wav", "zero/d_nohash_0.wav": "one_16k.flac"}
    root = make_sc(tmp_path, files, val=["no/b_nohash_0.wav"], test=["zero/d_nohash_0.wav"])
    train = SpeechCommands(root, "train")
    assert [path.relative_to(root).as_posix() for path in train.files] == ["yes/a_nohash_0.wav", "yes/c_nohash_0.wav"]
    assert train.labels.tolist() == [33, 33] and SpeechCommands.NUM_CLASSES == 35
    val = SpeechCommands(root, "val")
    features, label = val[0]
    assert int(label) == SPEECH_COMMANDS_WORDS.index("no") == 18 and features.shape[1] == 40
    assert SpeechCommands(root, "test").labels.tolist() == [34]
    (batch, lengths), labels = SpeechCommands(root, "val", lengths=True).collate_fn([train[0], val[0]])
    assert batch.shape[0] == 2 and labels.tolist() == [33, 18] and lengths.max() == batch.shape[1]


def test_speech_commands_layout_errors(tmp_path: Path) -> None:
    root = make_sc(tmp_path / "sc", {}, val=[], test=[])
    (root / "testing_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match="testing_list.txt"):
        SpeechCommands(root, "train")
    (root / "testing_list.txt").write_text("yes/missing.wav\n")
    with pytest.raises(FileNotFoundError, match="yes/missing.wav"):
        SpeechCommands(root, "test")
    shutil.rmtree(root / "visual")
    (root / "speech").mkdir()
    with pytest.raises(ValueError, match=r"missing word folders \['visual'\]; unexpected folders \['speech'\]"):
        SpeechCommands(root, "train")
    with pytest.raises(FileNotFoundError, match="not found"):
        SpeechCommands(tmp_path / "absent", "train")


def test_heidelberg_digits_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train_filenames.txt"):
        HeidelbergDigits(tmp_path, "train")
    names = list(HD_FILES)
    root = make_hd(tmp_path / "hd", train=names, test=["lang-english_speaker-09_trial-0_digit-4.flac"])
    with pytest.raises(FileNotFoundError, match="lang-english_speaker-09_trial-0_digit-4.flac"):
        HeidelbergDigits(root, "test")


BROKEN_AUDIO = {
    "zero-length": (lambda path: path.write_bytes(b""), "cannot decode audio file"),
    "garbage": (lambda path: path.write_bytes(b"fLaC but not really"), "cannot decode audio file"),
    "header-only": (
        lambda path: soundfile.write(path, np.zeros(0, dtype=np.float32), 16000, format="WAV"),
        "holds no samples",
    ),
    "too short": (
        lambda path: soundfile.write(path, np.zeros(300, dtype=np.float32), 16000),
        "holds 300 samples at 16000 Hz, shorter than one 25 ms frame",
    ),
    "stereo": (lambda path: soundfile.write(path, np.zeros((1600, 2), dtype=np.float32), 16000), "2 channels"),
}


@pytest.mark.parametrize("problem", list(BROKEN_AUDIO))
def test_broken_audio_fails_when_the_dataset_opens_naming_the_file(tmp_path: Path, problem: str) -> None:
    """Before, these files passed construction and crashed the first epoch with a traceback."""
    names = list(HD_FILES)
    root = make_hd(tmp_path / "hd", train=names, test=names[:2])
    write, message = BROKEN_AUDIO[problem]
    write(root / "audio" / names[0])
    with pytest.raises(ValueError, match=f"{names[0]}.*{message}|{message}.*{names[0]}"):
        HeidelbergDigits(root, "test")
    late = HeidelbergDigits(root, "test", check_files="first_read")
    assert len(late) == 2
    late[1]
    with pytest.raises(ValueError, match=f"{names[0]}"):
        late[0]


def test_sample_rate_is_checked_without_resampling(tmp_path: Path) -> None:
    names = list(HD_FILES)
    root = make_hd(tmp_path / "hd", train=names, test=names[:1])
    with pytest.raises(ValueError, match=f"{names[0]} is 16000 Hz, but the published files are 48000 Hz"):
        HeidelbergDigits(root, "test", resample=False)
    samples, rate = soundfile.read(ASSETS / "one_16k.flac", dtype="float32")
    soundfile.write(root / "audio" / names[0], np.repeat(samples, 3), 48000)
    features, _ = HeidelbergDigits(root, "test", resample=False)[0]
    expected = log_mel_fbank(torch.from_numpy(np.repeat(samples, 3)), 48000, resample=False)
    assert torch.equal(features, expected), "sparch's pipeline: 48 kHz samples framed as if they were 16 kHz"


def test_non_finite_audio_samples_are_refused(tmp_path: Path) -> None:
    names = list(HD_FILES)
    root = make_hd(tmp_path / "hd", train=names, test=names[:1])
    samples = np.full(1600, 0.1, dtype=np.float32)
    samples[7] = np.nan
    soundfile.write(root / "audio" / names[0], samples, 16000, format="WAV", subtype="FLOAT")
    with pytest.raises(ValueError, match=f"{names[0]} holds 1 non-finite samples"):
        HeidelbergDigits(root, "test")[0]


def test_skip_unreadable_leaves_broken_files_out_with_one_warning(tmp_path: Path) -> None:
    names = list(HD_FILES)
    root = make_hd(tmp_path / "hd", train=names, test=names)
    (root / "audio" / names[0]).write_bytes(b"")
    (root / "audio" / names[2]).write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="skipped 2 unreadable sample") as caught:
        dataset = HeidelbergDigits(root, "test", skip_unreadable=True)
    assert len(caught) == 1 and names[0] in str(caught[0].message) and names[2] in str(caught[0].message)
    assert [path.name for path in dataset.files] == [names[1], names[3]] and dataset.labels.tolist() == [2, 1]
    late = HeidelbergDigits(root, "test", skip_unreadable=True, check_files="first_read")
    with pytest.warns(UserWarning, match=f"skipped an unreadable sample .*{names[0]}"):
        features, label = late[0]
    assert int(label) == 2 and torch.equal(features, late[1][0]), "replaced by the next readable sample"


def test_speech_commands_accepts_a_subset_of_words_with_its_label_map(tmp_path: Path) -> None:
    root = tmp_path / "sc"
    for name, asset in {"yes/a_nohash_0.wav": "yes_16k.wav", "no/b_nohash_0.wav": "no_16k.wav"}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ASSETS / asset, root / name)
    (root / "no" / "c_nohash_0.wav").write_bytes((root / "no" / "b_nohash_0.wav").read_bytes())
    (root / "validation_list.txt").write_text("no/c_nohash_0.wav\nup/x_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("")
    with pytest.raises(ValueError, match="missing word folders.*pass words=no,yes"):
        SpeechCommands(root, "train")
    train = SpeechCommands(root, "train", words=("yes", "no"))
    assert train.word_labels == {"yes": 0, "no": 1} and train.labels.tolist() == [1, 0]
    assert SpeechCommands(root, "train", words="no,yes").labels.tolist() == [0, 1]
    val = SpeechCommands(root, "val", words=("yes", "no"))
    assert [path.name for path in val.files] == ["c_nohash_0.wav"] and int(val[0][1]) == 1
    with pytest.raises(ValueError, match=r"no folder for the word\(s\) \['up'\]"):
        SpeechCommands(root, "train", words=("yes", "up"))


def aligned_distance(ours: torch.Tensor, stored: torch.Tensor, max_shift: int = 6) -> float:
    """Mean |difference| of two filterbanks [frames, bins], ours started up to `max_shift` frames later (the stored
    words lost their leading silence to sox, fresh syntheses keep theirs); the best shift counts."""
    distances = []
    for shift in range(max_shift + 1):
        frames = min(len(ours) - shift, len(stored))
        distances.append((ours[shift : shift + frames] - stored[:frames]).abs().mean().item())
    return min(distances)


def test_native_rate_speech_is_resampled_to_the_stored_words(tmp_path: Path) -> None:
    """A 22.05 kHz file of eSpeak NG's library speaking "yes" (at -s 220, as the assets were made) reads as 16 kHz
    features that match the stored "yes" (espeak-ng 1.51, resampled by sox) and not the stored "no"."""
    samples, rate = speech("yes", words_per_minute=220)
    root = make_sc(tmp_path / "sc", {}, val=["yes/espeak_nohash_0.wav"], test=[])
    soundfile.write(root / "yes" / "espeak_nohash_0.wav", samples, rate, subtype="PCM_16")
    assert soundfile.info(root / "yes" / "espeak_nohash_0.wav").samplerate == rate == 22050
    features, label = SpeechCommands(root, "val")[0]
    assert int(label) == SPEECH_COMMANDS_WORDS.index("yes")
    resampled = math.ceil(len(samples) * 16000 / rate)
    assert len(features) == 1 + (resampled - 400) // 160, "25 ms / 10 ms frames of the 16 kHz resampled speech"
    same = aligned_distance(features, log_mel_fbank(*read_audio(ASSETS / "yes_16k.wav")))
    other = aligned_distance(features, log_mel_fbank(*read_audio(ASSETS / "no_16k.wav")))
    assert same < 1.0 < 2.0 < other, (same, other)


@pytest.mark.skipif(shutil.which("sox") is None, reason="needs sox (Debian: apt-get install sox) to convert speech")
def test_resampling_matches_sox_on_freshly_synthesised_speech(tmp_path: Path) -> None:
    """eSpeak NG speaks at 22.05 kHz; our resampling must give the same features as sox's conversion to 16 kHz."""
    root = make_sc(tmp_path / "sc", {}, val=["seven/espeak_nohash_0.wav"], test=["seven/sox_nohash_0.wav"])
    native, by_sox_file = root / "seven" / "espeak_nohash_0.wav", root / "seven" / "sox_nohash_0.wav"
    samples, rate = speech("seven")
    soundfile.write(native, samples, rate, subtype="PCM_16")
    subprocess.run(["sox", "-D", str(native), "-r", "16000", str(by_sox_file)], check=True)  # -D: no dither
    assert soundfile.info(native).samplerate != 16000
    ours, label = SpeechCommands(root, "val")[0]
    by_sox, _ = SpeechCommands(root, "test")[0]
    assert int(label) == SPEECH_COMMANDS_WORDS.index("seven")
    assert abs(len(ours) - len(by_sox)) <= 1
    frames = min(len(ours), len(by_sox))
    assert (ours[:frames, :38] - by_sox[:frames, :38]).abs().mean() < 0.1
