"""Command line: registry look-ups and checkpoint export.

    python -m zoo list [PATTERN]                 Markdown table: name, family, parameters, inputs, outputs
    python -m zoo info NAME [OPTION=VALUE ...]   JSON: family, paper, citation, input/output specs, config, parameters
    python -m zoo export CHECKPOINT OUT          OUT/model.safetensors + OUT/config.json from a zoo.train checkpoint

Errors (unknown model or option, unreadable checkpoint, existing export) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from zoo.options import check_options
from zoo.registry import TensorSpec, get_entry, list_models, model_info
from zoo.weights import export

__all__ = ["main", "models_table"]


def _specs(specs: dict[str, TensorSpec]) -> str:
    cells = []
    for name, spec in specs.items():
        shape = ", ".join(str(axis) for axis in spec.shape) + ("," if len(spec.shape) == 1 else "")
        dtype = "" if spec.dtype == "float32" else f" {spec.dtype}"
        cells.append(f"`{name}: ({shape}){dtype}`" + (" (optional)" if spec.optional else ""))
    return "<br>".join(cells)


def models_table(pattern: str | None = None) -> str:
    """Markdown table of the registered models matching `pattern` (the README's model table).

    Inputs and outputs show each tensor's name and shape, with its dtype when it is not float32.
    """
    rows = ["| model | family | parameters | inputs | outputs |", "|---|---|---:|---|---|"]
    for name in list_models(pattern):
        info = model_info(name)
        rows.append(
            f"| `{name}` | {info.family} | {info.num_params:,} | {_specs(info.inputs)} | {_specs(info.outputs)} |"
        )
    return "\n".join(rows)


def _option_words(words: list[str]) -> dict[str, str]:
    options = {}
    for word in words:
        key, separator, text = word.partition("=")
        if not separator or not key:
            raise ValueError(f"option {word!r} is not of the form OPTION=VALUE (e.g. hidden_size=256)")
        options[key] = text
    return options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoo", description="Look up the jellyzoo model registry.")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="Markdown table of the registered models")
    listing.add_argument("pattern", nargs="?", help="fnmatch pattern, e.g. 'spikgru*'")
    info = commands.add_parser("info", help="JSON description of one model (parameters at the given options)")
    info.add_argument("name")
    info.add_argument("options", nargs="*", metavar="OPTION=VALUE", help="builder options, e.g. hidden_size=256")
    exporting = commands.add_parser("export", help="write OUT/model.safetensors and OUT/config.json")
    exporting.add_argument("checkpoint", help="zoo.train checkpoint (.pt) or run directory (best.pt, else last.pt)")
    exporting.add_argument("out", help="folder to write")
    exporting.add_argument("--overwrite", action="store_true", help="replace an export already in OUT")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            print(models_table(args.pattern))
        elif args.command == "info":
            hints = get_entry(args.name).config_types
            overrides = check_options(_option_words(args.options), hints, owner=args.name, parse=True)
            print(json.dumps(model_info(args.name, **overrides).to_dict(), indent=2, default=str))
        else:
            out = export(args.checkpoint, args.out, overwrite=args.overwrite)
            print(f"wrote {out / 'model.safetensors'} and {out / 'config.json'}")
    except (KeyError, TypeError, ValueError, OSError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        print(f"python -m zoo {args.command}: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
