"""Training RAVEn's LM (zoo.train.recipes.raven_lm): the loss against a direct computation, the text mode of the LRS3
dataset (CSVs only, no media files), and a CLI run whose per-unit NLL falls on a few generated sentences."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

import zoo
from zoo.datasets import LRS3
from zoo.datasets.lrs3 import CSV_SUFFIX, Utterance, write_lrs3_csv
from zoo.decoding import UnitList
from zoo.train import get_recipe
from zoo.train.cli import main
from zoo.train.recipes.raven import word_error_rate_of
from zoo.train.recipes.raven_lm import language_model_loss, unit_nll

VOCAB = 8
"""Units 1..6, 0 = <blank>, 7 = <eos> in the tests' tiny vocabulary."""


def test_loss_is_the_mean_cross_entropy_of_the_units_then_eos() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 4, VOCAB)
    target = torch.tensor([[3, 1, 4], [2, -1, -1]])
    by_hand, count = 0.0, 0
    for b, units in enumerate(([3, 1, 4], [2])):
        for position, unit in enumerate([*units, VOCAB - 1]):
            by_hand -= torch.log_softmax(logits[b, position], -1)[unit]
            count += 1
    torch.testing.assert_close(language_model_loss(logits, target, torch.nn.Identity()), by_hand / count)
    total, units = unit_nll(logits, target)
    assert units.item() == count == 6
    torch.testing.assert_close(total, by_hand)


def write_sentences(root: Path, count: int = 24) -> list[tuple[int, ...]]:
    """Label CSVs (train and val lists) of `count` sentences from a tiny grammar, with no video or audio files."""
    generator = torch.Generator().manual_seed(0)
    sentences = []
    for _ in range(count):
        subject = 1 + int(torch.randint(0, 2, (1,), generator=generator))  # 1 or 2
        sentences.append((subject, 3, 4 + subject, 6))  # the object follows from the subject
    rows = [Utterance("lrs3", f"s/{index}.mp4", 10, units) for index, units in enumerate(sentences)]
    for listed in ("train", "val"):
        write_lrs3_csv(root / "data_paths" / f"{listed}{CSV_SUFFIX}", rows)
    return sentences


def test_text_mode_reads_the_csvs_only(tmp_path: Path) -> None:
    sentences = write_sentences(tmp_path)
    dataset = LRS3(tmp_path, "train", modality="text")
    assert not (tmp_path / "LRS3_h96w96_avi").exists() and len(dataset) == len(sentences)
    inputs, target = dataset.collate_fn([dataset[0], (torch.tensor([5]), torch.tensor([5]))])
    assert list(inputs) == ["tokens"]
    assert inputs["tokens"].tolist() == target.tolist() == [list(sentences[0]), [5, -1, -1, -1]]


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    with open(run_dir / "metrics.csv", newline="") as file:
        return [{key: float(value) for key, value in row.items() if value} for row in csv.DictReader(file)]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[int, ...]]]:
    """A raven-lm-lrs3 run through the CLI on the generated sentences (a tiny model, 12 epochs)."""
    root = tmp_path_factory.mktemp("lrs3")
    sentences = write_sentences(root)
    out = root / "run"
    argv = ["raven-lm-lrs3", "--data", str(root), "--out", str(out), "--device", "cpu"]
    argv += ["--workers", "0", "--no-progress", "--no-tensorboard", "--seed", "0"]
    argv += ["model.vocab_size=8", "model.embed_dim=16", "model.dim=32", "model.heads=2", "model.ffn=64"]
    argv += ["model.layers=1", "epochs=12", "batch_size=12", "lr=1e-2", "warmup_epochs=0", "schedule=constant"]
    assert main(argv) == 0
    return out, sentences


def test_cli_training_lowers_the_per_unit_nll(trained_run: tuple[Path, list[tuple[int, ...]]]) -> None:
    """The grammar leaves one free choice (the subject, 1 bit) per 5 predicted units: a model that learns it reaches
    log(2) / 5 = 0.14 nats per unit; a fresh one is near log(8) = 2.08."""
    out, sentences = trained_run
    assert get_recipe("raven-lm-lrs3").dataset_options == {"modality": "text"}
    rows = read_metrics(out)
    assert rows[0]["train_unit_nll"] > 1.5 and min(row["val_unit_nll"] for row in rows) < 0.35, rows
    model = zoo.load(out)  # the best epoch's weights
    tokens = torch.tensor(sentences)
    with torch.no_grad():
        logits = model(tokens)
    nll, count = unit_nll(logits, tokens)
    assert (nll / count).item() < 0.35
    log_probs = torch.log_softmax(logits[:, :-1], -1)
    assert log_probs[0, 0, 1:3].exp().sum().item() > 0.9  # a sentence starts with 1 or 2
    for row, sentence in zip(log_probs, sentences, strict=True):
        assert row[2].argmax().item() == 4 + sentence[0]  # the object (third unit) follows from the subject


def test_word_error_rate_of_fuses_the_trained_lm(
    trained_run: tuple[Path, list[tuple[int, ...]]], tmp_path: Path
) -> None:
    out, _ = trained_run
    torch.manual_seed(0)
    small = dict(dim=16, heads=2, ffn=32, blocks=1, decoder_dim=8, decoder_heads=2, decoder_ffn=16, decoder_layers=1)
    model = zoo.build("raven-asr-base-lowres", vocab_size=VOCAB, **small).eval()
    (tmp_path / "units.txt").write_text("".join(f"\u2581W{unit} {unit}\n" for unit in range(1, 7)), encoding="utf-8")
    units = UnitList.from_file(tmp_path / "units.txt")
    audio, lengths = torch.randn(2, 6 * 640), torch.tensor([6 * 640, 5 * 640])
    batches = [({"x": audio, "lengths": lengths}, torch.tensor([[1, 3, 5, 6], [2, 3, 6, 6]]))]
    _, plain = word_error_rate_of(model, batches, units, beam_size=3)
    _, fused = word_error_rate_of(model, batches, units, beam_size=3, lm=out, lm_weight=2.0)
    by_hand = model.recognize(audio, lengths, beam_size=3, lm=zoo.load(out), lm_weight=2.0)
    assert fused == [units.text(hyp) for hyp in by_hand] != plain, (fused, plain)
