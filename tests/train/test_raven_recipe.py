"""RAVEn fine-tuning recipes: the hybrid loss, layer-wise learning rates, checkpoint averaging, and a run through
the CLI that overfits a few LRS3-format utterances of speech (eSpeak NG speaking the transcripts; the WER falls)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torch.nn.functional as F
from espeak_speech import SPEECH_RATE, speech_16k

import zoo
from zoo.datasets import LRS3
from zoo.datasets.lrs3 import CSV_SUFFIX, SAMPLES_PER_FRAME, Utterance, write_lrs3_csv
from zoo.datasets.video import write_video
from zoo.decoding import UnitList
from zoo.models.raven import span_mask
from zoo.train import get_recipe
from zoo.train.cli import main
from zoo.train.optim import parameter_groups
from zoo.train.recipes.raven import (
    RAVEN_RECIPES,
    hybrid_ctc_attention_loss,
    layer_decay_groups,
    word_error_rate_of,
)

UNITS = "\u2581RED 1\n\u2581BLUE 2\nS 3\n\u2581GREEN 4\nER 5\n\u2581NO 6\n"
"""A tiny unit list in RAVEn's ``unigram1000_units.txt`` format (``\u2581`` starts a word)."""
TRANSCRIPTS = {"s/1": (1, 3), "s/2": (4, 5), "s/3": (6, 2)}
"""Unit ids per utterance: "REDS", "GREENER", "NO BLUE"."""
WORDS_PER_MINUTE = 350
"""eSpeak NG's speaking rate for the utterances: 0.17 .. 0.24 s (4 .. 5 frames) each, short enough for quick runs."""
TINY = {
    "model.dim": 32,
    "model.heads": 2,
    "model.ffn": 64,
    "model.blocks": 1,
    "model.decoder_dim": 32,
    "model.decoder_heads": 2,
    "model.decoder_ffn": 64,
    "model.decoder_layers": 1,
    "model.vocab_size": 8,
    "model.dropout": 0.0,
    "model.attention_dropout": 0.0,
    "model.drop_path": 0.0,
}


def test_hybrid_loss_matches_a_direct_computation() -> None:
    torch.manual_seed(0)
    vocab, batch = 7, 2
    output = {
        "ctc_logits": torch.randn(batch, 6, vocab),
        "frame_lengths": torch.tensor([6, 4]),
        "decoder_logits": torch.randn(batch, 4, vocab),
    }
    target = torch.tensor([[1, 2, 3], [4, -1, -1]])
    loss = hybrid_ctc_attention_loss(output, target, torch.nn.Identity(), ctc_weight=0.3, label_smoothing=0.2)
    ctc, attention = 0.0, 0.0
    for b, units in enumerate(([1, 2, 3], [4])):
        log_probs = torch.log_softmax(output["ctc_logits"][b, : output["frame_lengths"][b]], -1)
        ctc += F.ctc_loss(
            log_probs[:, None],
            torch.tensor([units]),
            torch.tensor([len(log_probs)]),
            torch.tensor([len(units)]),
            reduction="sum",
        )
        for position, unit in enumerate([*units, vocab - 1]):  # the units, then <eos>
            log_p = torch.log_softmax(output["decoder_logits"][b, position], -1)
            q = torch.full((vocab,), 0.2 / (vocab - 1))
            q[unit] = 0.8
            attention += (q * (q.log() - log_p)).sum()
    torch.testing.assert_close(loss, (0.3 * ctc + 0.7 * attention) / batch)


def test_layer_decay_groups_give_the_original_learning_rates() -> None:
    recipe = get_recipe("raven-vsr-base-lrs3-lowres")
    assert (recipe.lr, recipe.optimizer_options, recipe.weight_decay, recipe.grad_clip) == (
        5e-3,
        {"betas": (0.9, 0.98)},
        0.1,
        5.0,
    )
    with torch.device("meta"):
        model = zoo.build(recipe.model)
    groups = parameter_groups(model, recipe.weight_decay, (), recipe.param_groups)
    lr_of = {id(p): recipe.lr * group["lr_scale"] for group in groups for p in group["params"]}
    named = dict(model.named_parameters())
    assert math.isclose(lr_of[id(named["encoder.blocks.11.ff.w_1.weight"])], 1e-3)
    assert math.isclose(lr_of[id(named["encoder.blocks.0.attn.linear_q.weight"])], 1e-3 * 0.5**11)
    assert math.isclose(lr_of[id(named["encoder.frontend.stem.conv.weight"])], 1e-3 * 0.5**12)
    assert math.isclose(lr_of[id(named["encoder.embed.weight"])], 1e-3 * 0.5**12)
    assert math.isclose(lr_of[id(named["decoder.output.weight"])], 5e-3)
    assert math.isclose(lr_of[id(named["ctc_head.bias"])], 5e-3)
    assert len(layer_decay_groups(3, 1e-3, 2e-3, 1.0)) == 4


def write_spoken_lrs3(root: Path, lists: tuple[str, ...] = ("trainval", "test"), video: bool = False) -> None:
    """LRS3 files of `TRANSCRIPTS`, listed in the CSVs of `lists`: each utterance's 16 kHz .wav is eSpeak NG speaking
    the text its unit ids spell; with `video` also a random 96x96 mouth video (ffv1 .avi) of as many 25 fps frames
    as the speech fills (the audio-visual items cut the speech to them)."""
    root.mkdir(parents=True)
    (root / "units.txt").write_text(UNITS, encoding="utf-8")
    units = UnitList.from_file(root / "units.txt")
    rng = np.random.default_rng(0)
    rows = []
    for stem, ids in TRANSCRIPTS.items():
        waveform = speech_16k(units.text(ids).lower(), words_per_minute=WORDS_PER_MINUTE).numpy()
        frames = len(waveform) // SAMPLES_PER_FRAME
        path = root / "LRS3_audio" / f"{stem}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(path, waveform, SPEECH_RATE)
        if video:
            pixels = rng.integers(0, 255, (frames, 96, 96, 1), dtype=np.uint8).repeat(3, -1)
            write_video(root / "LRS3_h96w96_avi" / f"{stem}.avi", pixels, codec="ffv1")
        rows.append(Utterance("lrs3", f"{stem}.avi" if video else f"{stem}.mp4", frames, ids))
    for listed in lists:
        write_lrs3_csv(root / "data_paths" / f"{listed}{CSV_SUFFIX}", rows)


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    with open(run_dir / "metrics.csv", newline="") as file:
        return [{key: float(value) for key, value in row.items() if value} for row in csv.DictReader(file)]


@pytest.mark.slow
def test_asr_finetuning_overfits_a_few_utterances(tmp_path: Path) -> None:
    """60 steps of the 3 spoken utterances (one batch, 60 epochs, the recipe's cosine schedule) through the CLI:
    the loss falls 5x and the beam-search WER from 1 to < 0.35.

    Why so many steps: BatchNorm's running variance starts at 1, far above what the front-end stem gives on this
    speech (1e-4 .. 1e-3), and forgets its start by 0.9 per step. After 25 steps the model in evaluation mode
    (running statistics) answered the same transcript for all three utterances while the training-mode model
    (batch statistics) got each right. Single-utterance batches fitted less reliably (their statistics are not the
    running ones): one batch of all three keeps the two alike."""
    root = tmp_path / "lrs3"
    write_spoken_lrs3(root)
    units = UnitList.from_file(root / "units.txt")
    test = LRS3(root, "test", modality="audio")
    batches = [test.collate_fn([test[i] for i in range(len(test))])]
    torch.manual_seed(0)
    fresh = zoo.build("raven-asr-base-lowres", **{key.removeprefix("model."): value for key, value in TINY.items()})
    assert word_error_rate_of(fresh, batches, units, beam_size=4)[0] == 1.0

    out = tmp_path / "run"
    argv = ["raven-asr-base-lrs3-lowres", "--data", str(root), "--out", str(out), "--device", "cpu"]
    argv += ["--workers", "0", "--no-progress", "--no-tensorboard", "--seed", "0"]
    argv += [f"{key}={value}" for key, value in TINY.items()]
    argv += ["epochs=60", "batch_size=3", "train_data.max_frames=None", "lr=5e-3", "warmup_epochs=0", "val_split=None"]
    argv += ["train_data.augment_time_mask=False", f"param_groups={layer_decay_groups(1, 5e-3, 5e-3, 1.0)!r}"]
    assert main(argv) == 0
    losses = [row["train_loss"] for row in read_metrics(out)]
    assert len(losses) == 60 and losses[-1] < losses[0] / 5, losses
    model = zoo.load(out)
    wer, hypotheses = word_error_rate_of(model, batches, units, beam_size=4)
    assert wer < 0.35, hypotheses


def test_pretraining_recipe_follows_the_scripts() -> None:
    recipe = get_recipe("raven-pretrain-base-lrs3")
    assert (recipe.model, recipe.optimizer, recipe.lr, recipe.weight_decay, recipe.warmup_epochs) == (
        "raven-pretrain-base",
        "adamw",
        3e-3,
        0.04,
        40,
    )
    assert recipe.after_step["ema"]["momentum"] == 0.999 and recipe.after_step["ema"]["final_momentum"] == 1.0
    assert zoo.model_info("raven-pretrain-base").num_params > 2 * 52_445_376  # students + teachers + predictors


def test_span_mask_draws_spans_of_three_frames_in_the_valid_part() -> None:
    torch.manual_seed(0)
    lengths = torch.tensor([100, 40, 3])
    masks = torch.stack([span_mask(lengths, 100) for _ in range(200)])
    assert not masks[:, 1, 40:].any() and not masks[:, 2].any()
    rate = masks[:, 0].float().mean().item()
    assert 0.12 < rate < 0.2  # 0.2 of the frames as span starts, overlaps merge (fairseq's expected ~0.17)


@pytest.mark.slow
def test_pretraining_loss_falls_and_the_teachers_follow(tmp_path: Path) -> None:
    """5 steps of pre-training on 3 spoken utterances with random mouth videos, small online probes over the tiny
    unit list: the loss falls and the EMA teachers trail the students."""
    root = tmp_path / "lrs3"
    write_spoken_lrs3(root, lists=("train",), video=True)
    out = tmp_path / "run"
    small = dict(dim=32, heads=2, ffn=64, blocks=1, predictor_width=32, predictor_blocks=1, probe_vocab_size=8)
    small |= dict(probe_decoder_dim=32, probe_decoder_heads=2, probe_decoder_ffn=64, probe_decoder_layers=1)
    argv = ["raven-pretrain-base-lrs3", "--data", str(root), "--out", str(out), "--device", "cpu"]
    argv += ["--workers", "0", "--no-progress", "--no-tensorboard", "--seed", "0"]
    argv += [f"model.{key}={value}" for key, value in small.items()]
    argv += ["epochs=5", "batch_size=3", "lr=1e-3", "warmup_epochs=0", "val_split=None"]
    assert main(argv) == 0
    losses = [row["train_loss"] for row in read_metrics(out)]
    assert losses[-1] < losses[0], losses
    model = zoo.load(out)
    torch.manual_seed(0)  # the engine builds the model after seeding with --seed: this is its initial state
    fresh = zoo.build("raven-pretrain-base", **small)
    initial = dict(fresh.students.named_parameters())
    student = dict(model.students.named_parameters())
    teacher_moved, student_moved = 0.0, 0.0
    for name, teacher in model.teachers.named_parameters():
        assert not teacher.requires_grad
        teacher_moved += (teacher - initial[name]).square().sum().item()
        student_moved += (student[name] - initial[name]).square().sum().item()
    # momentum 0.999 over 5 steps: the teachers follow the students by well under 5 % of the students' change
    assert 0 < teacher_moved < 0.05**2 * student_moved


@pytest.mark.parametrize("recipe", RAVEN_RECIPES, ids=[recipe.name for recipe in RAVEN_RECIPES])
def test_every_finetuning_recipe_groups_its_model(recipe) -> None:
    """Each recipe's layer-wise groups match its model (every pattern used) and the decoder trains at the recipe lr."""
    with torch.device("meta"):
        model = zoo.build(recipe.model, **recipe.model_overrides)
    groups = parameter_groups(model, recipe.weight_decay, (), recipe.param_groups)
    lr_of = {id(p): recipe.lr * group["lr_scale"] for group in groups for p in group["params"]}
    named = dict(model.named_parameters())
    last = len(model.encoder.blocks) - 1
    assert lr_of[id(named["decoder.output.weight"])] == recipe.lr
    assert lr_of[id(named[f"encoder.blocks.{last}.gamma_ff"])] < recipe.lr
