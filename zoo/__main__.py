"""Command line look-ups of the registry.

    python -m zoo list [PATTERN]      Markdown table: name, family, parameters, input shape
    python -m zoo info NAME           JSON: family, paper, citation, input/output spec, config, parameters
"""

from __future__ import annotations

import argparse
import json
import sys

from zoo.registry import list_models, model_info


def models_table(pattern: str | None = None) -> str:
    """Markdown table of the registered models matching `pattern` (the README's model table)."""
    rows = ["| model | family | parameters | input |", "|---|---|---:|---|"]
    for name in list_models(pattern):
        info = model_info(name)
        shape = "(" + ", ".join(str(axis) for axis in info.inputs.shape) + ")"
        rows.append(f"| `{name}` | {info.family} | {info.num_params:,} | `{shape}` |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoo", description="Look up the jellyzoo model registry.")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="Markdown table of the registered models")
    listing.add_argument("pattern", nargs="?", help="fnmatch pattern, e.g. 'spikgru*'")
    info = commands.add_parser("info", help="JSON description of one model")
    info.add_argument("name")
    args = parser.parse_args(argv)
    if args.command == "list":
        print(models_table(args.pattern))
        return 0
    try:
        print(json.dumps(model_info(args.name).to_dict(), indent=2, default=str))
    except KeyError as error:
        print(error.args[0], file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
