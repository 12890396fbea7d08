"""RAVEn pre-training's online probes (design note B.5): a CTC head + attention decoder per student on detached
encoder features. Their losses leave the encoders' gradients alone, they learn, transcripts outside their units
are an error, and the pre-training recipe trains and logs them through the CLI on LRS3-format files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from espeak_speech import speech_16k

import zoo
from zoo.datasets.lrs3 import CSV_SUFFIX, Utterance, write_lrs3_csv
from zoo.datasets.video import write_video
from zoo.errors import ConfigError
from zoo.models.raven import PROBE_VOCAB_SIZE, OnlineProbe, RAVEnPretrainer
from zoo.train.cli import main
from zoo.train.recipes.raven import (
    ctc_and_attention_losses,
    probe_output,
    raven_pretrain_loss,
    unit_error_rate,
)

SMALL = dict(
    dim=32,
    heads=2,
    ffn=64,
    blocks=1,
    predictor_width=32,
    predictor_blocks=1,
    probe_decoder_dim=32,
    probe_decoder_heads=2,
    probe_decoder_ffn=64,
    probe_decoder_layers=1,
)
TRANSCRIPTS = {"s/0": (3, 1, 4), "s/1": (1, 5), "s/2": (9, 2, 6, 5)}
"""Unit ids of a few utterances, inside the probe's 1..39."""


def _batch(frames: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([frames, frames - 2, frames - 1])
    tokens = torch.full((3, 4), -1)
    for row, units in enumerate(TRANSCRIPTS.values()):
        tokens[row, : len(units)] = torch.tensor(units)
    return {
        "video": torch.randn(3, frames, 88, 88, generator=generator),
        "audio": torch.randn(3, frames * 640, generator=generator),
        "lengths": lengths,
        "tokens": tokens,
    }


def _small_model(**overrides) -> RAVEnPretrainer:
    torch.manual_seed(0)
    return zoo.build("raven-pretrain-base", **{**SMALL, "dropout": 0.0, "attention_dropout": 0.0, **overrides})


def test_probe_losses_leave_the_encoders_gradients_unchanged() -> None:
    """`raven_pretrain` adds each probe's CTC + attention loss; those terms reach the probes' parameters only (no
    gradient path to the students or predictors), while the RAVEn objective does reach the students."""
    model = _small_model()
    batch = _batch(frames=4)
    output = model(**batch)
    target = batch["tokens"]
    total = raven_pretrain_loss(output, target, model)
    objective = raven_pretrain_loss(
        {key: value for key, value in output.items() if "_probe_" not in key}, target, model
    )
    probe_terms = [ctc_and_attention_losses(probe_output(output, m), target) for m in ("video", "audio")]
    probes = sum(ctc + attention for ctc, attention in probe_terms)
    torch.testing.assert_close(total, objective + probes)
    shaped = [p for name, p in model.named_parameters() if p.requires_grad and not name.startswith("probes.")]
    assert all(grad is None for grad in torch.autograd.grad(probes, shaped, retain_graph=True, allow_unused=True))
    probe_gradients = torch.autograd.grad(probes, list(model.probes.parameters()), retain_graph=True)
    assert all(gradient.abs().sum() > 0 for gradient in probe_gradients[:2])  # each probe's CTC head
    students = list(model.students.parameters())
    assert any(grad is not None and grad.abs().sum() > 0 for grad in torch.autograd.grad(objective, students))


def test_probe_learns_a_few_utterances() -> None:
    """80 Adam steps of the video probe on one student's (fixed) features: its CTC + attention loss falls below a
    tenth and its greedy-CTC unit error rate from at least 1 (the fresh head emits junk) to under 0.3."""
    model = _small_model()
    batch = _batch(frames=10)
    with torch.no_grad():
        features = model.students["video"](batch["video"], batch["lengths"])
    valid = torch.arange(10)[None] < batch["lengths"][:, None]
    probe = model.probes["video"]

    def losses() -> tuple[torch.Tensor, torch.Tensor]:
        output = {f"video_probe_{key}": value for key, value in probe(features, valid, batch["tokens"]).items()}
        output["valid"] = valid
        ctc, attention = ctc_and_attention_losses(probe_output(output, "video"), batch["tokens"])
        errors, units = unit_error_rate(probe_output(output, "video"), batch["tokens"])
        return ctc + attention, errors / units

    first, first_rate = losses()
    optimizer = torch.optim.Adam(probe.parameters(), lr=1e-2)
    for _ in range(80):
        loss, _ = losses()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    last, last_rate = losses()
    assert last.item() < first.item() / 10, (first.item(), last.item())
    assert first_rate.item() >= 1.0 and last_rate.item() < 0.3, (first_rate.item(), last_rate.item())


def test_target_ids_outside_the_probe_units_are_an_error() -> None:
    """The probe's units are 1..39 (0 = <blank>, 40 = <eos>, -1 pads); anything else names the ids and the option."""
    model = _small_model()
    tokens = _batch(frames=4)["tokens"]
    features, valid = torch.randn(3, 4, SMALL["dim"]), torch.ones(3, 4, dtype=torch.bool)
    assert PROBE_VOCAB_SIZE == 41
    assert model.probes["video"](features, valid, tokens)["decoder_logits"].shape == (3, 5, 41)
    for wrong in (PROBE_VOCAB_SIZE - 1, 0, 1047):  # <eos>, <blank>, a unigram1000 unit
        tokens[1, 1] = wrong
        with pytest.raises(ConfigError, match=rf"target unit ids \[{wrong}\] do not fit .* probe_vocab_size"):
            model.probes["video"](features, valid, tokens)
    unigram = OnlineProbe(SMALL["dim"], 1049, 16, 2, 32, 1)
    assert unigram(features, valid, tokens)["decoder_logits"].shape == (3, 5, 1049)


def test_without_probes_the_tokens_are_ignored_and_the_probe_metric_says_so() -> None:
    model = _small_model(probe_vocab_size=0)
    batch = _batch(frames=4)
    output = model(**batch)
    assert not any("_probe_" in key for key in output) and len(model.probes) == 0
    assert torch.isfinite(raven_pretrain_loss(output, batch["tokens"], model))
    with pytest.raises(ConfigError, match="no online probe"):
        unit_error_rate(probe_output(output, "audio"), batch["tokens"])


def write_audiovisual_lrs3(root: Path, transcripts: dict[str, tuple[int, ...]], frames: int = 6) -> None:
    """LRS3-format pre-training data: per utterance a random 96x96 mouth video (ffv1 .avi) of `frames` frames and
    16 kHz speech (eSpeak NG saying a number word, cut or zero-padded to `frames` x 640 samples), listed with
    `transcripts`' unit ids in the train and val CSVs (the probes see unit ids, not words)."""
    rng = np.random.default_rng(0)
    rows = []
    for index, (stem, units) in enumerate(transcripts.items()):
        video = rng.integers(0, 255, (frames, 96, 96, 1), dtype=np.uint8).repeat(3, -1)
        write_video(root / "LRS3_h96w96_avi" / f"{stem}.avi", video, codec="ffv1")
        spoken = speech_16k(("one", "two", "three", "four")[index % 4]).numpy()[: frames * 640]
        (root / "LRS3_audio" / stem).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(root / "LRS3_audio" / f"{stem}.wav", np.pad(spoken, (0, frames * 640 - len(spoken))), 16000)
        rows.append(Utterance("lrs3", f"{stem}.avi", frames, units))
    for listed in ("train", "val"):
        write_lrs3_csv(root / "data_paths" / f"{listed}{CSV_SUFFIX}", rows)


def _pretrain_argv(root: Path, out: Path, *extra: str) -> list[str]:
    argv = ["raven-pretrain-base-lrs3", "--data", str(root), "--out", str(out), "--device", "cpu"]
    argv += ["--workers", "0", "--no-progress", "--no-tensorboard", "--seed", "0"]
    argv += [f"model.{key}={value}" for key, value in SMALL.items()]
    return argv + ["batch_size=3", "lr=1e-3", "warmup_epochs=0", *extra]


@pytest.mark.slow
def test_pretraining_recipe_trains_and_logs_the_probes_through_the_cli(tmp_path: Path) -> None:
    root = tmp_path / "lrs3"
    write_audiovisual_lrs3(root, TRANSCRIPTS)
    out = tmp_path / "run"
    assert main(_pretrain_argv(root, out, "epochs=2")) == 0
    with open(out / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2
    for modality in ("video", "audio"):
        rates = [float(row[f"val_{modality}_probe_unit_error_rate"]) for row in rows]
        assert all(0.0 <= rate <= 5.0 for rate in rates), rates
        assert f"train_{modality}_probe_unit_error_rate" not in rows[0]  # decoded on the host: validation only
    model = zoo.load(out)
    assert set(model.probes) == {"video", "audio"}


def test_pretraining_recipe_stops_on_transcripts_outside_the_probe_units(tmp_path: Path, capsys) -> None:
    root = tmp_path / "lrs3"
    write_audiovisual_lrs3(root, {"s/0": (3, 45), "s/1": (1, 2)}, frames=4)
    argv = _pretrain_argv(root, tmp_path / "run", "epochs=1", "val_split=None", "model.probe_vocab_size=41")
    assert main(argv) == 2
    assert "target unit ids [45] do not fit its 41 outputs" in capsys.readouterr().err
