"""Command line of ``python -m zoo.train`` (see `main`)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import json
import logging
import signal
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import zoo
from zoo.errors import ConfigError, one_line
from zoo.options import declared_options, type_name
from zoo.train.config import DEFAULT_WORKERS, OVERRIDE_GROUPS, RunConfig
from zoo.train.data import dataset_factory
from zoo.train.engine import describe_run, run
from zoo.train.plugins import load_plugin
from zoo.train.recipe import Recipe, get_recipe, list_recipes
from zoo.train.registries import get_loss, get_metric, get_step_hook

__all__ = ["console_logging", "main", "show_recipe"]

PROG = "python -m zoo.train"

USAGE_NOTES = """\
overrides (after the options, any number):
  field=value                a recipe field, e.g. lr=3e-4 epochs=50 schedule=cosine metrics=accuracy,top5
{groups}
  Values are Python literals (3, 0.1, (1, 2), True, None, {{'a': 1}}); anything else is a string.

one recipe in detail (model options, dataset options, loss, metrics):
  python -m zoo.train show RECIPE

multi-GPU / multi-node (one process per GPU; batch_size is the global batch, split over processes):
  torchrun --nproc_per_node 4 -m zoo.train RECIPE --data ROOT

SIGINT / SIGTERM stop after the current step with last.pt written; --resume auto continues exactly.
"""


def _plugin_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--plugin", action="append", default=[])
    parser.add_argument("--debug", action="store_true")
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
        prog=PROG,
        description="Train a registered recipe (a paper's model, data and optimisation settings).",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("recipe", help="registered recipe name (listed below)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="recipe/model/data overrides (see below)")
    parser.add_argument("--data", metavar="ROOT", help="dataset root directory (required to train)")
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
        help=f"data-loader workers per process (default: the recipe's workers field, else {DEFAULT_WORKERS})",
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
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved configuration (recipe fields, model config, run settings) as JSON and exit",
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    return parser


class _BelowWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


@contextlib.contextmanager
def console_logging() -> Iterator[None]:
    """While active: the ``zoo`` loggers' INFO messages go to stdout, warnings and errors to stderr."""
    logger = logging.getLogger("zoo")
    out = logging.StreamHandler(sys.stdout)
    out.addFilter(_BelowWarning())
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.WARNING)
    handlers = (out, err)
    previous_level, previous_propagate = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
        logger.setLevel(previous_level)
        logger.propagate = previous_propagate


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m zoo.train``; returns the exit status. ``RECIPE --help`` adds ``show RECIPE``.

    0: trained (or checked, printed); 2: a configuration or dataset error (one line on stderr; ``--debug`` raises
    it with its traceback instead); 128 + signal number: stopped by SIGINT/SIGTERM with ``last.pt`` written.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _plugin_parser().parse_known_args(argv)[0].debug
    with console_logging():
        try:
            return _main(argv)
        except ConfigError as error:
            if debug:
                raise
            print(f"{PROG}: error: {one_line(error)}", file=sys.stderr)
            return 2


def _main(argv: list[str]) -> int:
    for plugin in _plugin_parser().parse_known_args(argv)[0].plugin:
        load_plugin(plugin)
    if argv[:1] == ["show"]:
        return _show(argv[1:])
    parser = build_parser()
    if {"-h", "--help"} & set(argv):
        recipe = next((word for word in argv if word in list_recipes()), None)
        if recipe is not None:
            print(parser.format_help())
            print(show_recipe(recipe))
            return 0
    arguments = parser.parse_intermixed_args(argv)
    resume = arguments.resume
    if resume is not None and "=" in resume and not Path(resume).exists():
        raise ConfigError(
            f"--resume took the override {resume!r} as its checkpoint path; write '--resume auto' or put --resume "
            "after the overrides"
        )
    config = RunConfig(
        recipe=arguments.recipe,
        data=arguments.data or "",
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
    if arguments.print_config:
        print(json.dumps(describe_run(config), indent=2, default=repr))
        return 0
    if arguments.data is None:
        parser.error("the following arguments are required: --data")
    result = run(config)
    if arguments.dry_run:
        print(f"configuration OK: recipe {result.recipe.name!r}, model {result.recipe.model!r}, out {result.out}")
    if result.interrupted is not None:
        number = signal.Signals[result.interrupted] if result.interrupted in signal.Signals.__members__ else 15
        return 128 + int(number)
    return 0


def _show(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} show", description="Print a recipe: its fields, model options, dataset options, loss, metrics."
    )
    parser.add_argument("recipe", help="registered recipe name")
    parser.add_argument("--model", metavar="NAME", help="show the recipe with this model instead of its own")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE|FILE.py", help="import first")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    arguments = parser.parse_args(argv)
    print(show_recipe(arguments.recipe, model=arguments.model))
    return 0


def _first_line(obj: object) -> str:
    return (inspect.getdoc(obj) or "").strip().split("\n")[0]


def _keyword_defaults(fn: Callable[..., object], skip: int) -> str:
    defaults, hints = declared_options(fn, skip=skip)
    return ", ".join(f"{key}: {type_name(hints[key])} = {value!r}" for key, value in defaults.items()) or "(none)"


def show_recipe(name: str, model: str | None = None) -> str:
    """The text of ``python -m zoo.train show RECIPE``: description, every field, the model's options (with the
    recipe's preset), the dataset's options, the loss, the metrics and the step hooks.

    Raises:
        ConfigError: unknown recipe, or a `model` that does not fit the recipe (see `zoo.train.config`).
    """
    from zoo.datasets.options import format_dataset_options
    from zoo.train.config import resolve_model_config, resolve_recipe

    recipe = resolve_recipe(RunConfig(recipe=name, data="", model=model))
    info = zoo.model_info(recipe.model)
    model_config = resolve_model_config(recipe)
    lines = [f"recipe {recipe.name}: {recipe.description}", ""]
    lines.append(f"model {recipe.model} ({info.family} family; {info.paper}); options (model.<option>=value):")
    width = max((len(key) for key in model_config), default=0)
    for key, value in model_config.items():
        preset = "  (recipe preset)" if key in recipe.model_overrides else ""
        lines.append(f"  {key:<{width}} = {value!r}{preset}")
    factory = dataset_factory(recipe.dataset)
    lines += ["", f"dataset {recipe.dataset} ({factory.__module__}.{factory.__qualname__}): {_first_line(factory)}"]
    lines.append(
        f"  recipe sets: {recipe.dataset_options or '{}'}; training split adds: {recipe.train_options or '{}'}"
    )
    lines.append("  options (data.<option>=value, train_data.<option>=value for the training split only):")
    lines.append(format_dataset_options(factory, indent="    "))
    loss = get_loss(recipe.loss)
    lines += ["", f"loss {recipe.loss}: {_first_line(loss)}"]
    lines.append(f"  options (loss.<option>=value): {_keyword_defaults(loss, 3)}; recipe sets: {recipe.loss_options}")
    lines += ["", "metrics (reported for every split; 'loss' always):"]
    for metric in recipe.metrics:
        entry = get_metric(metric)
        direction = "higher" if entry.higher_is_better else "lower"
        lines.append(f"  {metric}: {_first_line(entry.fn)} ({direction} is better)")
    selection = f"{recipe.selection_metric} on {recipe.val_split}" if recipe.val_split else "none (val_split None)"
    lines.append(f"  best checkpoint: {selection}")
    lines += ["", "after each optimiser step (after_step):"]
    for hook, options in recipe.after_step.items():
        label = f"{hook} {options}" if options else hook
        lines.append(f"  {label}: {_first_line(get_step_hook(hook))}")
    lines += ["", "fields (field=value):"]
    for field in dataclasses.fields(Recipe):
        lines.append(f"  {field.name} = {getattr(recipe, field.name)!r}")
    return "\n".join(lines)
