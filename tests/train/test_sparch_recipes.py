"""sparch recipes: every sparch model trains through ``python -m zoo.train`` on small files in each dataset format.

SHD/SSC files are generated in the published HDF5 layout (class k fires in its own block of channels); HD and
Speech Commands folders are made from the espeak-ng words in tests/assets/speech. Models are shrunk to 16 hidden
units and SHD/SSC to 20 time steps so that the 32 runs fit in the CPU test budget; each epoch is one full-batch
step, and the loss must fall (spiking models learn slowly through sparch's summed-probability readout, so they get
8 epochs, the ANNs 4).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torchaudio

import zoo
from zoo.datasets.audio_commands import SPEECH_COMMANDS_WORDS
from zoo.datasets.fbank import log_mel_fbank
from zoo.datasets.shd import write_spike_file
from zoo.train import get_recipe
from zoo.train.cli import main
from zoo.train.config import apply_overrides
from zoo.train.data import build_dataset
from zoo.train.recipes.sparch import sparch_loss

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "speech"
SPIKING = [f"sparch-{name}" for name in ("lif", "rlif", "adlif", "radlif")]
MODELS = [*SPIKING, *(f"sparch-{name}" for name in ("mlp", "rnn", "ligru", "gru"))]
TRAIN_SIZES = {"shd": 12, "ssc": 16, "hd": 9, "sc": 16}
"""Training samples of the files below (SHD and HD hold one sample per class out for validation): one batch each,
so every epoch is one full-batch step and its loss is not noise from the batch draw."""
WORDS = {"one": "one_16k.flac", "two": "two_16k.flac", "yes": "yes_16k.wav", "no": "no_16k.wav"}


def write_spiking(root: Path, prefix: str, splits: tuple[str, ...], num_classes: int) -> Path:
    """16 samples per split over 4 classes; class k spikes in channels [k*width, (k+1)*width) in the first 0.3 s."""
    rng = np.random.default_rng(0)
    width = 700 // num_classes
    root.mkdir(parents=True)
    for split in splits:
        labels = np.arange(16) % 4
        units = [label * width + rng.integers(0, width, 30) for label in labels]
        times = [np.sort(rng.uniform(0.0, 0.3, 30)) for _ in labels]
        write_spike_file(root / f"{prefix}_{split}.h5", times, units, labels)
    return root


def write_heidelberg_digits(root: Path) -> Path:
    (root / "audio").mkdir(parents=True)
    digits = {"english": {1: "one_16k.flac", 2: "two_16k.flac"}, "german": {3: "drei_16k.flac"}}
    names = []
    for language, files in digits.items():
        for digit, asset in files.items():
            for speaker in range(4):
                name = f"lang-{language}_speaker-{speaker:02d}_trial-0_digit-{digit}.flac"
                write_48k(ASSETS / asset, root / "audio" / name)
                names.append(name)
    (root / "train_filenames.txt").write_text("\n".join(names) + "\n")
    (root / "test_filenames.txt").write_text("\n".join(names[::4]) + "\n")
    return root


def write_48k(source: Path, target: Path) -> None:
    """`source` resampled to 48 kHz 16-bit FLAC, the rate of the published HD audio (sparch-hd reads it unresampled)."""
    samples, rate = soundfile.read(source, dtype="float32")
    resampled = torchaudio.functional.resample(torch.from_numpy(samples), rate, 48000).clamp(-1, 1)
    soundfile.write(target, resampled.numpy(), 48000, subtype="PCM_16")


def write_speech_commands(root: Path) -> Path:
    for word in SPEECH_COMMANDS_WORDS:
        (root / word).mkdir(parents=True)
    (root / "_background_noise_").mkdir()
    held = []
    for word, asset in WORDS.items():
        for speaker in range(5):
            name = f"{word}/{speaker:08x}_nohash_0.wav"
            soundfile_copy(ASSETS / asset, root / name)
            if speaker == 4:
                held.append(name)
    (root / "validation_list.txt").write_text("\n".join(held) + "\n")
    (root / "testing_list.txt").write_text("\n".join(held) + "\n")
    return root


def soundfile_copy(source: Path, target: Path) -> None:
    """Re-encode `source` as the WAV file `target` (Speech Commands ships WAV)."""
    samples, rate = soundfile.read(source, dtype="int16")
    soundfile.write(target, samples, rate, subtype="PCM_16")


@pytest.fixture(scope="module")
def data_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sparch-data")
    return {
        "shd": write_spiking(base / "shd", "shd", ("train", "test"), 20),
        "ssc": write_spiking(base / "ssc", "ssc", ("train", "valid", "test"), 35),
        "hd": write_heidelberg_digits(base / "hd"),
        "sc": write_speech_commands(base / "sc"),
    }


def train_losses(run_dir: Path) -> list[float]:
    with open(run_dir / "metrics.csv", newline="") as file:
        return [float(row["train_loss"]) for row in csv.DictReader(file)]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("preset", ["shd", "ssc", "hd", "sc"])
def test_every_model_trains_on_every_format_through_the_cli(
    preset: str, model: str, data_roots: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    epochs = 8 if model in SPIKING else 4
    overrides = [f"epochs={epochs}", f"batch_size={TRAIN_SIZES[preset]}", "model.hidden_size=16"]
    if preset in ("shd", "ssc"):
        overrides.append("data.num_bins=20")
    argv = [f"sparch-{preset}", "--data", str(data_roots[preset]), "--model", model, "--out", str(out)]
    argv += ["--device", "cpu", "--workers", "0", "--no-progress", "--no-tensorboard", *overrides]
    assert main(argv) == 0
    losses = train_losses(out)
    assert len(losses) == epochs, losses
    assert losses[-1] < losses[0] and sum(losses[-2:]) < sum(losses[:2]), f"{model} on {preset}: train losses {losses}"


@pytest.mark.parametrize("lengths", [True, False])
def test_padded_recipes_batch_lengths_unless_asked_for_sparch_padding(
    lengths: bool, data_roots: dict[str, Path], tmp_path: Path
) -> None:
    """HD/SC batches are (features, lengths) by default; data.lengths=False gives sparch's plain padded tensor."""
    recipe = get_recipe("sparch-hd")
    if not lengths:
        recipe = apply_overrides(recipe, {"data.lengths": False})
    dataset = build_dataset(recipe, data_roots["hd"], "train")
    inputs, _ = dataset.collate_fn([dataset[0], dataset[4]])
    if lengths:
        features, sizes = inputs
        assert sizes.tolist() == [len(dataset[0][0]), len(dataset[4][0])] and sizes[0] != sizes[1]
        assert features.shape[1] == max(sizes)
    else:
        assert isinstance(inputs, torch.Tensor)
    out = tmp_path / "run"
    argv = ["sparch-hd", "--data", str(data_roots["hd"]), "--model", "sparch-adlif", "--out", str(out), "--device"]
    argv += ["cpu", "--workers", "0", "--no-progress", "--no-tensorboard", "epochs=8", "batch_size=9"]
    argv += ["model.hidden_size=16", f"data.lengths={lengths}"]
    assert main(argv) == 0
    losses = train_losses(out)
    assert losses[-1] < losses[0], losses


def test_recipes_follow_sparch_defaults() -> None:
    for preset, dataset in [("shd", "shd"), ("ssc", "ssc"), ("hd", "heidelberg-digits"), ("sc", "speech-commands")]:
        recipe = get_recipe(f"sparch-{preset}")
        assert recipe.dataset == dataset and recipe.model_overrides == {"dataset": preset}
        assert recipe.dataset_options == ({"lengths": True, "resample": False} if preset in ("hd", "sc") else {})
        assert (recipe.optimizer, recipe.lr, recipe.batch_size, recipe.epochs, recipe.amp) == (
            "adam",
            1e-2,
            128,
            5,
            False,
        )
        assert (recipe.schedule, recipe.plateau_factor, recipe.plateau_patience, recipe.min_lr) == (
            "plateau",
            0.7,
            1,
            1e-6,
        )
        assert (recipe.selection_metric, recipe.val_split, recipe.plateau_threshold) == ("accuracy", "val", 1e-4)
        config = zoo.resolve_config(recipe.model, **recipe.model_overrides)
        assert (config["hidden_size"], config["num_hidden_layers"], config["dropout"]) == (128, 2, 0.1)
        assert config["normalization"] == "batchnorm" and recipe.model == "sparch-lif"


def test_hd_recipe_computes_sparchs_features_and_the_variant_resamples(data_roots: dict[str, Path]) -> None:
    """sparch: torchaudio.load + kaldi.fbank(x, num_mel_bins=40) at its default 16 kHz, whatever the file's rate."""
    paper = build_dataset(get_recipe("sparch-hd"), data_roots["hd"], "test")
    path = paper.files[0]
    samples, rate = soundfile.read(path, dtype="float32")
    assert rate == 48000
    sparch = torchaudio.compliance.kaldi.fbank(torch.from_numpy(samples)[None], num_mel_bins=40)
    assert torch.equal(paper[0][0], sparch)
    variant = build_dataset(get_recipe("sparch-hd-resampled"), data_roots["hd"], "test")
    resampled = torchaudio.functional.resample(torch.from_numpy(samples), 48000, 16000)
    assert variant.files[0] == path and torch.equal(variant[0][0], log_mel_fbank(resampled, 16000))
    assert len(sparch) > 3 * len(variant[0][0]), "sparch frames the 48 kHz audio as if 16 kHz: 3x more frames"
    assert "not the paper" in get_recipe("sparch-hd-resampled").description


def test_paper_scale_radlif_has_the_reference_parameter_count(reference_dir: Path) -> None:
    listing = json.loads((reference_dir / "sparch" / "ssc_radlif_3x1024.json").read_text())
    recipe = get_recipe("sparch-radlif-ssc")
    with torch.device("meta"):
        model = zoo.build(recipe.model, **recipe.model_overrides)
    assert sum(parameter.numel() for parameter in model.parameters()) == listing["param_count"]


def test_sparch_loss_regulariser() -> None:
    scores = torch.tensor([[2.0, 1.0, 0.5]])
    target = torch.tensor([0])
    rates = torch.tensor([0.0, 0.6, 0.3])
    plain = sparch_loss((scores, rates), target, torch.nn.Identity())
    torch.testing.assert_close(plain, torch.nn.functional.cross_entropy(scores, target))
    regularised = sparch_loss((scores, rates), target, torch.nn.Identity(), use_regularizers=True)
    torch.testing.assert_close(regularised - plain, torch.tensor(0.5 * ((0.01 - 0.0) + (0.6 - 0.5))))
    with pytest.raises(ValueError, match="spiking sparch model"):
        sparch_loss(scores, target, torch.nn.Identity(), use_regularizers=True)
