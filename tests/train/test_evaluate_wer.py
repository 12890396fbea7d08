"""``python -m zoo.evaluate --units``: beam-search word error rates and transcripts of a recogniser, with and without
a language model, from a training checkpoint or from a file in the original code's layout (``--recipe
--reference``), and the errors of decoding options that do not fit (issue 14)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import torch
from models.test_raven import _legacy, manifest, random_state

import zoo
from zoo.convert import convert_state_dict
from zoo.datasets import LRS3
from zoo.decoding import UnitList, word_errors
from zoo.evaluate import build_parser
from zoo.evaluate import main as evaluate_main
from zoo.train import get_recipe
from zoo.train.cli import main as train_main
from zoo.train.recipes.raven import layer_decay_groups, word_error_rate_of

from .conftest import tiny
from .test_raven_recipe import TINY, write_spoken_lrs3

RECIPE, MODEL = "raven-asr-base-lrs3-lowres", "raven-asr-base-lowres"
BEAM = 4
FRAMES = 10
"""``data.max_frames`` of every run: the test utterances (4..8 frames) fall into several batches, longest first."""
LM_WEIGHT = 3.0
"""Large enough that the LM (trained on the three transcripts) changes what the barely trained recogniser says."""
COMMON = ["--device", "cpu", "--workers", "0", "--no-progress", "--no-tensorboard", "--seed", "0"]
TINY_LM = ["model.embed_dim=16", "model.dim=32", "model.heads=2", "model.ffn=64", "model.layers=1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Spoken LRS3-format data (3 test utterances, 6 units), a tiny ASR recogniser after one step at a negligible
    learning rate (its decoding is its fresh initialisation's), an LM trained on the transcripts (8 units) and one
    with 10 units."""
    base = tmp_path_factory.mktemp("evaluate_wer")
    root = base / "lrs3"
    write_spoken_lrs3(root)
    paths = {"root": root, "units": root / "units.txt", "run": base / "asr", "lm": base / "lm", "lm10": base / "lm10"}
    argv = [RECIPE, "--data", str(root), "--out", str(paths["run"]), *COMMON, *(f"{k}={v}" for k, v in TINY.items())]
    argv += ["epochs=1", "batch_size=3", "lr=1e-7", "min_lr=0", "warmup_epochs=0", "schedule=constant"]
    argv += ["val_split=None", "average_last=0", f"param_groups={layer_decay_groups(1, 1e-7, 1e-7, 1.0)!r}"]
    assert train_main(argv) == 0
    for name, vocab, epochs in (("lm", 8, 5), ("lm10", 10, 1)):
        argv = ["raven-lm-lrs3", "--data", str(root), "--out", str(paths[name]), *COMMON, *TINY_LM]
        argv += [f"model.vocab_size={vocab}", f"epochs={epochs}", "lr=3e-2", "batch_size=3", "warmup_epochs=0"]
        argv += ["schedule=constant", "val_split=None", "data.train_list=trainval"]
        assert train_main(argv) == 0
    return paths


def evaluate(trained: dict[str, Path], out: Path, *arguments: str) -> tuple[dict, list[str]]:
    """The CLI on the test split with `arguments` after the data: (its JSON, its transcript file's lines)."""
    argv = ["--data", str(trained["root"]), "--device", "cpu", "--out", str(out), f"data.max_frames={FRAMES}"]
    argv += arguments
    assert evaluate_main(argv) == 0
    result = json.loads(out.read_text())
    assert result["transcripts_file"] == str(out.with_suffix(".hyp.txt"))
    return result, out.with_suffix(".hyp.txt").read_text(encoding="utf-8").splitlines()


def checkpoint_arguments(trained: dict[str, Path], *decoding: str) -> list[str]:
    return ["--checkpoint", str(trained["run"] / "last.pt"), "--units", str(trained["units"]), *decoding]


def by_hand(trained: dict[str, Path], **options) -> tuple[float, list[str]]:
    """`word_error_rate_of` on the batches the CLI evaluates (the recipe's LRS3 options, batches of up to `FRAMES`
    frames), hypotheses in dataset order."""
    test = LRS3(trained["root"], "test", **{**get_recipe(RECIPE).dataset_options, "max_frames": FRAMES})
    order = list(test.batch_sampler(1, 0, 0, shuffle=False))
    assert len(order) > 1 and [index for batch in order for index in batch] != list(range(len(test)))
    batches = [test.collate_fn([test[index] for index in batch]) for batch in order]
    wer, hypotheses = word_error_rate_of(
        zoo.load(trained["run"]), batches, UnitList.from_file(trained["units"]), **options
    )
    by_index = dict(zip([index for batch in order for index in batch], hypotheses, strict=True))
    return wer, [by_index[index] for index in range(len(test))]


@pytest.fixture(scope="module")
def plain(trained: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[str]]:
    """The CLI on the trained checkpoint: beam search without LM."""
    out = tmp_path_factory.mktemp("plain") / "plain.json"
    return evaluate(trained, out, *checkpoint_arguments(trained, "--beam-size", str(BEAM)))


def hypotheses_of(lines: list[str]) -> list[str]:
    return [line.split("\t")[1] for line in lines]


@pytest.mark.slow  # the module fixture writes speech and trains a recogniser and two LMs (~8 s)
def test_cli_wer_and_transcripts_equal_word_error_rate_of(
    trained: dict[str, Path], plain: tuple[dict, list[str]]
) -> None:
    result, lines = plain
    wer, hypotheses = by_hand(trained, beam_size=BEAM)
    assert result["wer"] == wer
    units = UnitList.from_file(trained["units"])
    rows = LRS3(trained["root"], "test", modality="audio").utterances
    references = [units.text(row.units) for row in rows]
    assert lines == [f"{row.path}\t{hyp}\t{ref}" for row, hyp, ref in zip(rows, hypotheses, references, strict=True)]
    errors = sum(word_errors(hyp, ref) for hyp, ref in zip(hypotheses, references, strict=True))
    words = sum(len(reference.split()) for reference in references)
    assert (result["word_errors"], result["words"]) == (errors, words) and wer == errors / words
    assert {key: value for key, value in result["decoding"].items() if key != "seconds"} == {
        "units": str(trained["units"]),
        "beam_size": BEAM,
        "ctc_weight": 0.1,
        "lm": None,
        "lm_weight": 0.0,
    }
    assert set(result["metrics"]) == {"loss", "unit_error_rate"} and result["num_samples"] == 3


def test_language_model_weight_zero_is_no_lm_and_a_weight_fuses_it(
    trained: dict[str, Path], plain: tuple[dict, list[str]], tmp_path: Path
) -> None:
    decoding = ("--beam-size", str(BEAM))
    lm = ("--lm", str(trained["lm"]))
    _, unweighted = evaluate(trained, tmp_path / "zero.json", *checkpoint_arguments(trained, *decoding, *lm))
    assert unweighted == plain[1]
    result, fused = evaluate(
        trained, tmp_path / "fused.json", *checkpoint_arguments(trained, *decoding, *lm, "--lm-weight", str(LM_WEIGHT))
    )
    wer, hypotheses = by_hand(trained, beam_size=BEAM, lm=trained["lm"], lm_weight=LM_WEIGHT)
    assert result["wer"] == wer and hypotheses_of(fused) == hypotheses
    assert hypotheses != hypotheses_of(plain[1]), (
        "the LM should change the hypotheses at this weight (else the check above proves little)"
    )
    assert (result["decoding"]["lm"], result["decoding"]["lm_weight"]) == (str(trained["lm"]), LM_WEIGHT)


def original_layout(state: dict[str, torch.Tensor], listing: list) -> dict[str, torch.Tensor]:
    """`state` (ours) under the original names of the manifest `listing`, paired by converting each listed key alone
    (a key of ours without an original name is an error)."""
    ours_to_original = {}
    for entry in listing:
        (ours,) = convert_state_dict(MODEL, random_state([entry], "meta"))
        ours_to_original[ours] = entry[0]
    return {ours_to_original[key]: value for key, value in state.items()}


@pytest.mark.parametrize("layout", ["flat", "legacy"])
def test_released_file_in_the_original_layout_evaluates_as_the_checkpoint(
    trained: dict[str, Path], plain: tuple[dict, list[str]], tmp_path: Path, reference_dir: Path, layout: str
) -> None:
    state = zoo.load(trained["run"]).state_dict()
    original = original_layout(state, manifest(reference_dir, MODEL)["state_dict"])
    if layout == "legacy":
        original = _legacy(original, "encoder.", "decoder.")
        assert "encoder.input_layer.0.weight" in original and "decoder.output_norm.weight" in original
    torch.save(original, tmp_path / "asr_tiny.pth")
    decoding = ("--units", str(trained["units"]), "--beam-size", str(BEAM))
    released, released_lines = evaluate(
        trained,
        tmp_path / "released.json",
        *("--recipe", RECIPE, "--reference", str(tmp_path / "asr_tiny.pth"), *decoding),
        *(f"{key}={value}" for key, value in TINY.items()),
    )
    ours, ours_lines = plain
    assert released_lines == ours_lines
    assert released["reference"] == str(tmp_path / "asr_tiny.pth") and "checkpoint" not in released
    assert (released["model"], released["epoch"]) == (MODEL, None)
    for key in ("recipe", "wer", "word_errors", "words", "num_samples"):
        assert released[key] == ours[key], key
    torch.testing.assert_close(released["metrics"], ours["metrics"])


def test_errors_are_one_line_with_status_2(
    trained: dict[str, Path], data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def fails(*arguments: str) -> str:
        assert evaluate_main(["--data", str(trained["root"]), "--device", "cpu", *arguments]) == 2
        error = capsys.readouterr().err
        assert error.startswith("python -m zoo.evaluate: error: ") and error.count("\n") == 1, error
        return error

    five = tmp_path / "five_units.txt"
    five.write_text("".join(f"\u2581W{unit} {unit}\n" for unit in range(1, 6)), encoding="utf-8")
    checkpoint = ["--checkpoint", str(trained["run"] / "last.pt")]
    assert "lists 5 units (ids 1..5) but the model has 8 outputs, which need units 1..6" in fails(
        *checkpoint, "--units", str(five)
    )
    units = ("--units", str(trained["units"]))
    assert "has 10 output units but the model has 8" in fails(*checkpoint, *units, "--lm", str(trained["lm10"]))
    assert "--lm-weight 0.3 needs a language model" in fails(*checkpoint, *units, "--lm-weight", "0.3")
    assert "--lm needs beam search" in fails(*checkpoint, *units, "--beam-size", "0", "--lm", str(trained["lm"]))
    assert "expects a value in [0, 1], got 1.5" in fails(*checkpoint, *units, "--ctc-weight", "1.5")
    assert "accepts only data.<option>=value overrides, got 'model.dim'" in fails(*checkpoint, "model.dim=8")

    reference = ("--recipe", RECIPE, "--reference")
    assert "is a jellyzoo checkpoint or export of 'raven-asr-base-lowres'" in fails(*reference, checkpoint[1])
    torch.save({"encoder.embed.0.weight": torch.zeros(2, 2)}, tmp_path / "partial.pth")
    assert "does not load into 'raven-asr-base-lowres' (recipe 'raven-asr-base-lrs3-lowres')" in fails(
        *reference, str(tmp_path / "partial.pth")
    )

    assert train_main([tiny.RECIPE, "--data", str(data_root), "--out", str(tmp_path / "mlp"), "epochs=1", *COMMON]) == 0
    assert evaluate_main(["--data", str(data_root), "--checkpoint", str(tmp_path / "mlp" / "last.pt"), *units]) == 2
    assert "has no recognize method" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--reference", "x.pth"], "--reference needs --recipe NAME"),
        (["--checkpoint", "x.pt", "--recipe", RECIPE], "--recipe goes with --reference only"),
        (["--checkpoint", "x.pt", "--reference", "x.pth"], "not allowed with argument"),
        (["--checkpoint", "x.pt", "--beam-size", "8", "--lm-weight", "0.2"], "--beam-size/--lm-weight need --units"),
    ],
)
def test_usage_errors(arguments: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        evaluate_main(["--data", str(tmp_path), *arguments])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_readme_evaluation_commands_parse_and_name_registered_recipes() -> None:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if "zoo.evaluate" in words:
                commands.append(words[words.index("zoo.evaluate") + 1 :])
    assert sum("--units" in words for words in commands) >= 3, commands
    for words in commands:
        arguments = build_parser().parse_intermixed_args(words)
        if arguments.recipe is not None:
            assert get_recipe(arguments.recipe).model in zoo.list_models()
