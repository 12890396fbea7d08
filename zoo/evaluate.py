"""Evaluate a model on a dataset split: ``python -m zoo.evaluate --checkpoint PATH --data ROOT``.

Weights come from one of:

- ``--checkpoint PATH``: a ``zoo.train`` checkpoint (``best.pt``, ``last.pt``, ``averaged.pt``). The model is rebuilt
  from the checkpoint's own config (model name and full builder config) and loaded strictly; the dataset, its
  options, the loss and the metrics come from the recipe stored in the checkpoint.
- ``--recipe NAME --reference FILE``: a checkpoint released with the original paper's code (e.g. RAVEn's
  ``vsr_base.pth``, a flat E2E state dict). The recipe's model (with its ``model_overrides`` and any
  ``model.<option>=value`` words) is built and the file loaded through ``zoo.convert.from_reference`` (strict); the
  dataset, loss and metrics are the recipe's.

``data.<option>=value`` words override dataset options. The result is a JSON object::

    {"checkpoint" | "reference": ..., "recipe": ..., "model": ..., "epoch": ..., "split": ..., "num_samples": ...,
     "metrics": {"loss": ..., "<metric>": ...}, "firing_rates": {"<layer>": ...}}

written to ``--out`` (default: next to the weights, ``<file stem>.<split>.json``) and printed.

Recognition (``--units FILE``, for models with RAVEn's ``recognize`` method): every utterance is decoded
(hybrid CTC/attention beam search, ``--beam-size`` 40 and ``--ctc-weight`` 0.1 as the original; ``--beam-size 0``:
greedy CTC), optionally with a language model fused with ``--lm-weight`` (the original's "+LM" scripts: 0.2 for VSR
on LRS3, 0.3 for the 30 h rows), and the unit ids become text through the unit list (``labels/unigram1000_units.txt``
format). The JSON gains ``"wer"`` (word errors / reference words), ``"word_errors"``, ``"words"``, the
``"decoding"`` settings and ``"transcripts_file"``: ``<out stem>.hyp.txt``, one line per utterance in dataset order,
``name<TAB>hypothesis<TAB>reference`` (the name is the dataset's ``sample_name(index)``, e.g. LRS3's CSV path, else
the index), for diffing two runs. From Python, `evaluate_checkpoint` and `evaluate_reference` return the lines'
contents under ``"transcripts"`` instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

import zoo
from zoo.convert import from_reference
from zoo.decoding import UnitList, check_search_weights, word_error_rate
from zoo.errors import ConfigError, one_line
from zoo.models.raven_lm import load_language_model
from zoo.options import check_range
from zoo.train.checkpoint import load_checkpoint
from zoo.train.config import apply_overrides, parse_overrides
from zoo.train.data import Batches, build_dataset, evaluation_loader
from zoo.train.distributed import World
from zoo.train.engine import resolve_device
from zoo.train.loop import StepContext, evaluate_epoch
from zoo.train.plugins import load_plugin
from zoo.train.recipe import Recipe, get_recipe
from zoo.train.recipes.raven import transcribe
from zoo.weights import read_checkpoint

__all__ = ["Decoding", "evaluate_checkpoint", "evaluate_reference", "main"]


@dataclasses.dataclass(frozen=True)
class Decoding:
    """Recognition settings (module docstring).

    Attributes:
        units: unit list file (``unit id`` per line, ids 1..V-2 of the model's V outputs).
        beam_size: hypotheses kept per utterance (0: greedy CTC, no LM).
        ctc_weight: weight of the CTC prefix score (the attention decoder gets 1 - ctc_weight).
        lm: language model file or run (`zoo.models.raven_lm.load_language_model`), or None.
        lm_weight: weight of the LM's log-probability (0: the LM is not used).
    """

    units: str | Path
    beam_size: int = 40
    ctc_weight: float = 0.1
    lm: str | Path | None = None
    lm_weight: float = 0.0


def _world() -> World:
    return World(rank=0, local_rank=0, size=1)


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    split: str = "test",
    batch_size: int | None = None,
    device: str = "auto",
    workers: int = 0,
    dataset_options: dict[str, Any] | None = None,
    progress: bool = False,
    decoding: Decoding | None = None,
) -> dict[str, Any]:
    """Loss, metrics and mean firing rates of a checkpoint's model on `split`, and with `decoding` its word error
    rate and transcripts (see the module docstring).

    Raises:
        ConfigError: missing/unreadable checkpoint, unknown model (e.g. a plugin not imported), missing dataset
            root or split, unknown dataset option, decoding that does not fit the model.
    """
    saved = load_checkpoint(checkpoint)
    config = saved["config"]
    recipe = Recipe.from_dict(config["recipe"])
    if dataset_options:
        recipe = apply_overrides(recipe, {f"data.{key}": value for key, value in dataset_options.items()})
    _check_root(data, recipe)
    try:
        model = zoo.build(config["model"], **config["model_config"])
    except (KeyError, TypeError) as error:
        raise ConfigError(f"checkpoint {str(checkpoint)!r}: {error.args[0] if error.args else error}") from None
    model.load_state_dict(saved["model"])
    result = {"checkpoint": str(checkpoint), "recipe": recipe.name, "model": config["model"], "epoch": saved["epoch"]}
    return result | _evaluate(model, recipe, data, split, batch_size, device, workers, progress, decoding)


def evaluate_reference(
    recipe: str,
    reference: str | Path,
    data: str | Path,
    split: str = "test",
    batch_size: int | None = None,
    device: str = "auto",
    workers: int = 0,
    model_options: dict[str, Any] | None = None,
    dataset_options: dict[str, Any] | None = None,
    progress: bool = False,
    decoding: Decoding | None = None,
) -> dict[str, Any]:
    """`evaluate_checkpoint` for a file released with the original code: the registered `recipe`'s model (its
    ``model_overrides``, then `model_options`) loaded from `reference` through ``zoo.convert.from_reference``.

    Raises:
        ConfigError: unknown recipe or option, a file that is missing, unreadable or a jellyzoo checkpoint, or one
            whose keys or shapes do not fit the model; as `evaluate_checkpoint` for the data and decoding.
    """
    overrides = {f"model.{key}": value for key, value in (model_options or {}).items()}
    overrides |= {f"data.{key}": value for key, value in (dataset_options or {}).items()}
    resolved = apply_overrides(get_recipe(recipe), overrides)
    _check_root(data, resolved)
    try:
        saved = read_checkpoint(reference)
    except (FileNotFoundError, ValueError) as error:
        raise ConfigError(f"--reference: {one_line(error)}") from None
    if saved.model is not None:
        raise ConfigError(
            f"--reference {str(reference)!r} is a jellyzoo checkpoint or export of {saved.model!r}, not a file of the "
            "original code; evaluate it with --checkpoint"
        )
    try:
        model = from_reference(resolved.model, saved.state_dict, **resolved.model_overrides)
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(
            f"--reference {str(reference)!r} does not load into {resolved.model!r} (recipe {resolved.name!r}): "
            f"{one_line(error.args[0] if error.args else error)}"
        ) from None
    result = {"reference": str(reference), "recipe": resolved.name, "model": resolved.model, "epoch": None}
    return result | _evaluate(model, resolved, data, split, batch_size, device, workers, progress, decoding)


def _check_root(data: str | Path, recipe: Recipe) -> None:
    if not Path(data).is_dir():
        raise ConfigError(
            f"dataset root {str(data)!r} does not exist or is not a directory (dataset {recipe.dataset!r})"
        )


def _evaluate(
    model: nn.Module,
    recipe: Recipe,
    data: str | Path,
    split: str,
    batch_size: int | None,
    device: str,
    workers: int,
    progress: bool,
    decoding: Decoding | None,
) -> dict[str, Any]:
    world = _world()
    target = resolve_device(device, world)
    model.to(target)
    scorers = _prepare_decoding(model, decoding, target) if decoding is not None else None
    dataset = build_dataset(recipe, data, split)
    loader = evaluation_loader(
        dataset, batch_size or recipe.eval_batch_size or recipe.batch_size, world, workers, target.type == "cuda"
    )
    context = StepContext(
        model=model,
        bare_model=model,
        recipe=recipe,
        device=target,
        world=world,
        show_progress=progress,
        log_every=50,
    )
    metrics, firing = evaluate_epoch(context, loader, f"evaluate {split}", split).reduce(world)
    result = {"split": split, "num_samples": len(dataset), "metrics": metrics, "firing_rates": firing}
    if decoding is not None:
        result |= _recognise(model, recipe, dataset, loader, split, decoding, *scorers, progress)
    return result


def _prepare_decoding(model: nn.Module, decoding: Decoding, device: Any) -> tuple[UnitList, nn.Module | None]:
    """Check `decoding` against `model` before any data is read: the unit list and the language model (or None)."""
    name = type(model).__name__
    if not callable(getattr(model, "recognize", None)):
        raise ConfigError(
            f"--units: the model ({name}) has no recognize method, so it cannot be decoded into text; word error "
            "rates need a recogniser such as raven-vsr-base"
        )
    try:
        check_range("beam_size", decoding.beam_size, low=0, owner="decoding")
        check_search_weights(decoding.ctc_weight, decoding.lm_weight, owner="decoding")
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if decoding.lm_weight and decoding.lm is None:
        raise ConfigError(f"--lm-weight {decoding.lm_weight:g} needs a language model (--lm PATH)")
    if decoding.lm is not None and decoding.beam_size == 0:
        raise ConfigError("--lm needs beam search (--beam-size > 0); --beam-size 0 decodes CTC greedily, without LM")
    try:
        units = UnitList.from_file(decoding.units)
    except (OSError, ValueError) as error:
        raise ConfigError(f"--units {str(decoding.units)!r}: {one_line(error)}") from None
    vocab = getattr(model, "vocab_size", None)
    if vocab is not None and set(units.units) != set(range(1, vocab - 1)):
        listed = sorted(units.units)
        raise ConfigError(
            f"--units {str(decoding.units)!r} lists {len(listed)} units (ids {listed[0]}..{listed[-1]}) but the model "
            f"has {vocab} outputs, which need units 1..{vocab - 2} (0 = <blank>, {vocab - 1} = <eos>)"
        )
    if decoding.lm is None:
        return units, None
    try:
        lm = load_language_model(decoding.lm)
    except (FileNotFoundError, ValueError, KeyError) as error:
        raise ConfigError(f"--lm {str(decoding.lm)!r}: {one_line(error.args[0] if error.args else error)}") from None
    if vocab is not None and lm.vocab_size != vocab:
        raise ConfigError(
            f"--lm {str(decoding.lm)!r} has {lm.vocab_size} output units but the model has {vocab}: the language "
            "model must be trained on the recogniser's units"
        )
    return units, lm.to(device)


def _recognise(
    model: nn.Module,
    recipe: Recipe,
    dataset: Dataset,
    loader: DataLoader,
    split: str,
    decoding: Decoding,
    units: UnitList,
    lm: nn.Module | None,
    progress: bool,
) -> dict[str, Any]:
    """WER and transcripts of every sample of `loader` (in dataset order) through `transcribe`."""
    order = [index for batch in loader.batch_sampler for index in batch]
    batches = Batches(loader, f"dataset {recipe.dataset!r}, split {split!r}")
    shown = tqdm(batches, desc=f"decode {split}", total=len(batches), disable=not progress, leave=False)
    started = time.perf_counter()
    hypotheses, references = transcribe(
        model,
        shown,
        units,
        decoding.beam_size,
        decoding.ctc_weight,
        next(model.parameters()).device,
        lm,
        decoding.lm_weight,
    )
    seconds = time.perf_counter() - started
    if len(hypotheses) != len(order):
        raise ConfigError(f"the loader gave {len(hypotheses)} utterances for the {len(order)} its sampler listed")
    errors, words = word_error_rate(hypotheses, references)
    name = getattr(dataset, "sample_name", str)
    by_index = sorted(zip(order, hypotheses, references, strict=True))
    settings = dataclasses.asdict(decoding) | {"seconds": round(seconds, 3)}
    settings |= {"units": str(decoding.units), "lm": None if decoding.lm is None else str(decoding.lm)}
    return {
        "wer": errors / max(words, 1),
        "word_errors": errors,
        "words": words,
        "decoding": settings,
        "transcripts": [
            {"name": name(index), "hypothesis": hypothesis, "reference": reference}
            for index, hypothesis, reference in by_index
        ],
    }


def _write_transcripts(transcripts: Sequence[Mapping[str, str]], path: Path) -> None:
    """``name<TAB>hypothesis<TAB>reference`` lines (the module docstring's transcript file)."""
    lines = [f"{row['name']}\t{row['hypothesis']}\t{row['reference']}\n" for row in transcripts]
    path.write_text("".join(lines), encoding="utf-8")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m zoo.evaluate",
        description="Evaluate a jellyzoo training checkpoint, or a released checkpoint of the original code through "
        "a recipe, on a dataset split and write the metrics (and with --units the word error rate) as JSON.",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="data.<option>=value",
        help="dataset option overrides (and with --reference model.<option>=value builder options)",
    )
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument("--checkpoint", metavar="PATH", help="checkpoint written by zoo.train")
    weights.add_argument(
        "--reference", metavar="FILE", help="checkpoint released with the original code (needs --recipe)"
    )
    parser.add_argument("--recipe", metavar="NAME", help="with --reference: the recipe whose model and data to use")
    parser.add_argument("--data", required=True, metavar="ROOT", help="dataset root directory")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"), help="split (default test)")
    parser.add_argument("--out", metavar="FILE", help="JSON output (default: <weights stem>.<split>.json beside them)")
    parser.add_argument("--batch-size", type=int, help="evaluation batch size (default: the recipe's)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--workers", type=int, default=0, help="data-loader workers (default 0)")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE|FILE.py", help="import first")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    recognition = parser.add_argument_group("recognition (word error rate)")
    recognition.add_argument("--units", metavar="FILE", help="unit list (unit id per line): decode and score WER")
    recognition.add_argument("--beam-size", type=int, help="beam size (default 40; 0: greedy CTC)")
    recognition.add_argument("--ctc-weight", type=float, help="CTC weight in the beam score (default 0.1)")
    recognition.add_argument("--lm", metavar="PATH", help="language model file or raven-lm run to fuse")
    recognition.add_argument("--lm-weight", type=float, help="language model weight (default 0; +LM rows 0.2/0.3)")
    return parser


def _decoding(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> Decoding | None:
    options = {"beam_size": arguments.beam_size, "ctc_weight": arguments.ctc_weight, "lm": arguments.lm}
    options["lm_weight"] = arguments.lm_weight
    given = {key: value for key, value in options.items() if value is not None}
    if arguments.units is None:
        if given:
            parser.error(f"--{'/--'.join(key.replace('_', '-') for key in given)} need --units FILE (decoding)")
        return None
    return Decoding(arguments.units, **given)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m zoo.evaluate``; returns the exit status.

    2 for a usage, configuration or dataset error, printed as one line on stderr (``--debug`` raises it with its
    traceback instead).
    """
    parser = build_parser()
    arguments = parser.parse_intermixed_args(argv)
    if arguments.reference is not None and arguments.recipe is None:
        parser.error("--reference needs --recipe NAME (the recipe whose model and dataset to use)")
    if arguments.checkpoint is not None and arguments.recipe is not None:
        parser.error("--recipe goes with --reference only: a --checkpoint brings its own recipe")
    decoding = _decoding(arguments, parser)
    try:
        for plugin in arguments.plugin:
            load_plugin(plugin)
        options: dict[str, dict[str, Any]] = {"data": {}, "model": {}}
        allowed = ("data", "model") if arguments.reference is not None else ("data",)
        for key, value in parse_overrides(arguments.overrides).items():
            group, _, option = key.partition(".")
            if group not in allowed or not option:
                words = " or ".join(f"{prefix}.<option>=value" for prefix in allowed)
                raise ConfigError(f"evaluation accepts only {words} overrides, got {key!r}")
            options[group][option] = value
        common = dict(
            data=arguments.data,
            split=arguments.split,
            batch_size=arguments.batch_size,
            device=arguments.device,
            workers=arguments.workers,
            dataset_options=options["data"],
            progress=arguments.progress,
            decoding=decoding,
        )
        if arguments.checkpoint is not None:
            result = evaluate_checkpoint(arguments.checkpoint, **common)
        else:
            result = evaluate_reference(arguments.recipe, arguments.reference, model_options=options["model"], **common)
    except ConfigError as error:
        if arguments.debug:
            raise
        print(f"{parser.prog}: error: {one_line(error)}", file=sys.stderr)
        return 2
    weights = Path(arguments.checkpoint or arguments.reference)
    out = Path(arguments.out) if arguments.out else weights.with_name(f"{weights.stem}.{arguments.split}.json")
    if decoding is not None:
        transcripts = out.with_suffix(".hyp.txt")
        _write_transcripts(result.pop("transcripts"), transcripts)
        result["transcripts_file"] = str(transcripts)
    text = json.dumps(result, indent=2)
    out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
