"""Evaluate a training checkpoint on a dataset split: ``python -m zoo.evaluate --checkpoint PATH --data ROOT``.

The model is rebuilt from the checkpoint's own config (model name and full builder config) and loaded
strictly; the dataset, its options, the loss and the metrics come from the recipe stored in the checkpoint
(``data.<option>=value`` words override dataset options). The result is a JSON object::

    {"checkpoint": ..., "recipe": ..., "model": ..., "epoch": ..., "split": ..., "num_samples": ...,
     "metrics": {"loss": ..., "<metric>": ...}, "firing_rates": {"<layer>": ...}}

written to ``--out`` (default: next to the checkpoint, ``<checkpoint stem>.<split>.json``) and printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zoo
from zoo.errors import ConfigError, one_line
from zoo.train.checkpoint import load_checkpoint
from zoo.train.config import apply_overrides, parse_overrides
from zoo.train.data import build_dataset, evaluation_loader
from zoo.train.distributed import World
from zoo.train.engine import resolve_device
from zoo.train.loop import StepContext, evaluate_epoch
from zoo.train.plugins import load_plugin
from zoo.train.recipe import Recipe

__all__ = ["evaluate_checkpoint", "main"]


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    split: str = "test",
    batch_size: int | None = None,
    device: str = "auto",
    workers: int = 0,
    dataset_options: dict[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Loss, metrics and mean firing rates of a checkpoint's model on `split` (see the module docstring).

    Raises:
        ConfigError: missing/unreadable checkpoint, unknown model (e.g. a plugin not imported), missing dataset
            root or split, unknown dataset option.
    """
    saved = load_checkpoint(checkpoint)
    config = saved["config"]
    recipe = Recipe.from_dict(config["recipe"])
    if dataset_options:
        recipe = apply_overrides(recipe, {f"data.{key}": value for key, value in dataset_options.items()})
    if not Path(data).is_dir():
        raise ConfigError(
            f"dataset root {str(data)!r} does not exist or is not a directory (dataset {recipe.dataset!r})"
        )
    world = World(rank=0, local_rank=0, size=1)
    target = resolve_device(device, world)
    try:
        model = zoo.build(config["model"], **config["model_config"])
    except (KeyError, TypeError) as error:
        raise ConfigError(f"checkpoint {str(checkpoint)!r}: {error.args[0] if error.args else error}") from None
    model.load_state_dict(saved["model"])
    model.to(target)
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
    return {
        "checkpoint": str(checkpoint),
        "recipe": recipe.name,
        "model": config["model"],
        "epoch": saved["epoch"],
        "split": split,
        "num_samples": len(dataset),
        "metrics": metrics,
        "firing_rates": firing,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m zoo.evaluate",
        description="Evaluate a jellyzoo training checkpoint on a dataset split and write the metrics as JSON.",
    )
    parser.add_argument("overrides", nargs="*", metavar="data.<option>=value", help="dataset option overrides")
    parser.add_argument("--checkpoint", required=True, metavar="PATH", help="checkpoint written by zoo.train")
    parser.add_argument("--data", required=True, metavar="ROOT", help="dataset root directory")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"), help="split (default test)")
    parser.add_argument("--out", metavar="FILE", help="JSON output (default: <checkpoint stem>.<split>.json beside it)")
    parser.add_argument("--batch-size", type=int, help="evaluation batch size (default: the recipe's)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--workers", type=int, default=0, help="data-loader workers (default 0)")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE|FILE.py", help="import first")
    parser.add_argument("--progress", action="store_true", help="show a progress bar")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m zoo.evaluate``; returns the exit status.

    2 for a configuration or dataset error, printed as one line on stderr (``--debug`` raises it with its
    traceback instead).
    """
    parser = build_parser()
    arguments = parser.parse_intermixed_args(argv)
    try:
        for plugin in arguments.plugin:
            load_plugin(plugin)
        options = {}
        for key, value in parse_overrides(arguments.overrides).items():
            if not key.startswith("data."):
                raise ConfigError(f"evaluation accepts only data.<option>=value overrides, got {key!r}")
            options[key.removeprefix("data.")] = value
        result = evaluate_checkpoint(
            arguments.checkpoint,
            arguments.data,
            split=arguments.split,
            batch_size=arguments.batch_size,
            device=arguments.device,
            workers=arguments.workers,
            dataset_options=options,
            progress=arguments.progress,
        )
    except ConfigError as error:
        if arguments.debug:
            raise
        print(f"{parser.prog}: error: {one_line(error)}", file=sys.stderr)
        return 2
    checkpoint = Path(arguments.checkpoint)
    out = Path(arguments.out) if arguments.out else checkpoint.with_name(f"{checkpoint.stem}.{arguments.split}.json")
    text = json.dumps(result, indent=2)
    out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
