"""Command line of ``python -m zoo.train`` (see `main`)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from zoo.train.config import DEFAULT_WORKERS, OVERRIDE_GROUPS, RunConfig
from zoo.train.engine import run
from zoo.train.errors import ConfigError
from zoo.train.plugins import load_plugin
from zoo.train.recipe import Recipe, get_recipe, list_recipes

__all__ = ["main"]

USAGE_NOTES = """\
overrides (after the options, any number):
  field=value                a recipe field, e.g. lr=3e-4 epochs=50 schedule=cosine metrics=accuracy
{groups}
  Values are Python literals (3, 0.1, (1, 2), True, None, {{'a': 1}}); anything else is a string.

multi-GPU / multi-node (one process per GPU; batch_size is the global batch, split over processes):
  torchrun --nproc_per_node 4 -m zoo.train RECIPE --data ROOT
"""


def _plugin_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--plugin", action="append", default=[])
    return parser


def _epilog() -> str:
    names = list_recipes()
    width = max((len(name) for name in names), default=0)
    lines = ["recipes:"]
    lines += [f"  {name:<{width}}  {get_recipe(name).description}".rstrip() for name in names] or [
        "  (none registered)"
    ]
    lines.append("")
    lines.append("recipe fields (override with field=value):")
    fields = ", ".join(field.name for field in dataclasses.fields(Recipe))
    lines += textwrap.wrap(fields, width=100, initial_indent="  ", subsequent_indent="  ")
    lines.append("")
    groups = "\n".join(
        f"  {prefix + '.<option>=value':<26} merged into the recipe's {field}"
        for prefix, field in OVERRIDE_GROUPS.items()
    )
    lines.append(USAGE_NOTES.format(groups=groups))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The full parser; its ``--help`` lists the registered recipes (import plugins first to include theirs)."""
    parser = argparse.ArgumentParser(
        prog="python -m zoo.train",
        description="Train a registered recipe (a paper's model, data and optimisation settings).",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("recipe", help="registered recipe name (listed below)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="recipe/model/data overrides (see below)")
    parser.add_argument("--data", required=True, metavar="ROOT", help="dataset root directory")
    parser.add_argument("--model", metavar="NAME", help="train this registered model instead of the recipe's")
    parser.add_argument("--out", metavar="DIR", help="run directory (default: runs/<recipe>)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        metavar="PATH|auto",
        help="continue from a checkpoint; 'auto' (the default when the flag has no value) uses <out>/last.pt if any",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--deterministic", action="store_true", help="use deterministic algorithms only")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help=f"data-loader workers per process (default {DEFAULT_WORKERS})",
    )
    parser.add_argument("--epochs", type=int, help="shortcut for epochs=N")
    parser.add_argument(
        "--stop-after",
        type=int,
        metavar="EPOCHS",
        help="stop this invocation after EPOCHS epochs (continue with --resume)",
    )
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE|FILE.py",
        help="import a module that registers recipes/models/datasets (repeatable)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="tqdm progress bars (default: when stderr is a terminal; rank 0 only)",
    )
    parser.add_argument("--log-every", type=int, default=50, help="batches between progress-bar loss updates")
    parser.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard event files")
    parser.add_argument("--dry-run", action="store_true", help="check the configuration and stop before training")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m zoo.train``; returns the exit status (2 for a configuration error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        for plugin in _plugin_parser().parse_known_args(argv)[0].plugin:
            load_plugin(plugin)
        parser = build_parser()
    except ConfigError as error:
        print(f"python -m zoo.train: error: {error}", file=sys.stderr)
        return 2
    arguments = parser.parse_intermixed_args(argv)
    resume = arguments.resume
    if resume is not None and "=" in resume and not Path(resume).exists():
        print(
            f"{parser.prog}: error: --resume took the override {resume!r} as its checkpoint path; write "
            "'--resume auto' or put --resume after the overrides",
            file=sys.stderr,
        )
        return 2
    config = RunConfig(
        recipe=arguments.recipe,
        data=arguments.data,
        model=arguments.model,
        overrides=arguments.overrides,
        out=arguments.out,
        resume=arguments.resume,
        seed=arguments.seed,
        deterministic=arguments.deterministic,
        device=arguments.device,
        workers=arguments.workers,
        epochs=arguments.epochs,
        stop_after_epochs=arguments.stop_after,
        progress=arguments.progress,
        log_every=arguments.log_every,
        tensorboard=not arguments.no_tensorboard,
        dry_run=arguments.dry_run,
    )
    try:
        result = run(config)
    except ConfigError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    if arguments.dry_run:
        print(f"configuration OK: recipe {result.recipe.name!r}, model {result.recipe.model!r}, out {result.out}")
    return 0
