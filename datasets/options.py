"""Dataset options: checked when a dataset is constructed, and listed with their type, default and meaning.

Every dataset is constructed as ``Dataset(root, split="train", *, option=default, ...)``: keyword-only options, each
with a type hint, a default and one ``name: meaning`` entry in the ``Args:`` section of the class docstring. The
same names mean the same thing in every dataset:

=================  ===================================================================================
option             meaning
=================  ===================================================================================
``num_bins``       number of time bins (the T axis of the items)
``window_s``       length in seconds of the time window that is binned
``binning``        rule placing the bin edges
``out_of_window``  what happens to events after the window: ``"drop"``, ``"error"`` or ``"last_step"``
``validation``     ``"heldout"`` or ``"test"`` (see `zoo.datasets.holdout`), with ``val_fraction``, ``val_seed``
``cache_dir``      folder of an on-disk cache of preprocessed items (built once, keyed by file and options)
``max_samples``    keep only the first N items (quick runs)
``skip_unreadable`` skip samples that cannot be read, with one warning listing them (off: an error)
``check_files``    when file headers are checked: ``"open"`` (construction) or ``"first_read"``
``augment_<what>`` a training-split augmentation
=================  ===================================================================================

`checked_options` wraps a constructor so that every option is checked (name, then type, with the checker of the model
options, `zoo.options`) before the dataset does any work; range checks stay in the constructors. `dataset_options`
lists the options of a dataset class (for ``--help``, ``show RECIPE`` and the README table, which a test keeps in
step with the code).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import typing
from collections.abc import Callable, Iterable
from typing import Any

from zoo.datasets.holdout import SPLITS
from zoo.options import check_options, type_name

__all__ = [
    "DatasetOption",
    "checked_options",
    "dataset_options",
    "format_dataset_options",
    "options_markdown",
    "readme_table",
]


@dataclasses.dataclass(frozen=True)
class DatasetOption:
    """One keyword option of a dataset: its name, type (as written in the hint), default and meaning."""

    name: str
    type: str
    default: Any
    meaning: str


def _constructor(dataset: Callable[..., Any]) -> Callable[..., Any]:
    function = dataset.__init__ if inspect.isclass(dataset) else dataset
    return inspect.unwrap(function)


def _keyword_parameters(function: Callable[..., Any]) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY]


_ENTRY = re.compile(r"(\w+): (.*)")


def _docstring_meanings(dataset: Callable[..., Any]) -> dict[str, str]:
    """``{name: meaning}`` from the ``Args:`` section of the docstring (continuation lines joined)."""
    lines = inspect.cleandoc(dataset.__doc__ or "").splitlines()
    if "Args:" not in (line.strip() for line in lines):
        return {}
    start = [line.strip() for line in lines].index("Args:") + 1
    meanings: dict[str, str] = {}
    indent = None
    current = None
    for line in lines[start:]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth < indent:
            break
        match = _ENTRY.fullmatch(line.strip())
        if depth == indent and match:
            current = match.group(1)
            meanings[current] = match.group(2).strip()
        elif current is not None:
            meanings[current] += " " + line.strip()
    return meanings


def dataset_options(dataset: Callable[..., Any]) -> tuple[DatasetOption, ...]:
    """The keyword options of a dataset class (or factory function), in signature order.

    Raises `TypeError` naming the option when one has no default, no type hint or no docstring entry.
    """
    function = _constructor(dataset)
    hints = typing.get_type_hints(function)
    meanings = _docstring_meanings(dataset)
    name = getattr(dataset, "__name__", repr(dataset))
    options = []
    for parameter in _keyword_parameters(function):
        for missing, what in (
            (parameter.default is parameter.empty, "a default"),
            (parameter.name not in hints, "a type hint"),
            (parameter.name not in meanings, "an 'Args:' docstring entry"),
        ):
            if missing:
                raise TypeError(f"dataset {name}: option {parameter.name!r} has no {what}")
        options.append(
            DatasetOption(parameter.name, type_name(hints[parameter.name]), parameter.default, meanings[parameter.name])
        )
    return tuple(options)


def format_dataset_options(dataset: Callable[..., Any], indent: str = "  ") -> str:
    """Plain-text listing, one option per line: ``name: type = default  meaning``."""
    options = dataset_options(dataset)
    width = max((len(f"{o.name}: {o.type} = {o.default!r}") for o in options), default=0)
    return "\n".join(f"{indent}{f'{o.name}: {o.type} = {o.default!r}':<{width}}  {o.meaning}" for o in options)


def options_markdown(datasets: Iterable[tuple[str, Callable[..., Any]]]) -> str:
    """The README's option table of `datasets` (``(name, class)`` pairs): dataset, option, type, default, meaning."""
    rows = ["| dataset | option | type | default | meaning |", "|---|---|---|---|---|"]
    for name, dataset in datasets:
        for option in dataset_options(dataset):
            cells = (f"`{name}`", f"`{option.name}`", f"`{option.type}`", f"`{option.default!r}`", option.meaning)
            rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows)


def readme_table() -> str:
    """`options_markdown` of every dataset class that `zoo.datasets` exports (the README's table)."""
    from torch.utils.data import Dataset

    import zoo.datasets

    classes = [(name, getattr(zoo.datasets, name)) for name in zoo.datasets.__all__]
    return options_markdown(
        (name, value) for name, value in classes if inspect.isclass(value) and issubclass(value, Dataset)
    )


def checked_options(init: Callable[..., None]) -> Callable[..., None]:
    """Decorate a dataset constructor ``__init__(self, root, split="train", *, options...)``: before it runs, the
    split must be one of ``"train"``, ``"val"``, ``"test"`` and every option must exist (unknown names get the
    closest ones) and match its type hint (`TypeError` naming the dataset, option, expected type and value); values
    reach the constructor converted as `zoo.options.check_option` converts them (an int for a float, a list for a
    tuple)."""
    signature = inspect.signature(init)
    keywords = [p.name for p in _keyword_parameters(init)]

    @functools.wraps(init)
    def wrapper(self: Any, root: Any, *args: Any, **kwargs: Any) -> None:
        name = type(self).__name__
        hints = {key: hint for key, hint in typing.get_type_hints(init).items() if key in keywords}
        options = check_options({k: v for k, v in kwargs.items() if k != "split"}, hints, owner=name)
        bound = signature.bind(self, root, *args, **{k: v for k, v in kwargs.items() if k == "split"}, **options)
        split = bound.arguments.get("split", signature.parameters["split"].default)
        if split not in SPLITS:
            raise ValueError(f"{name}: split must be one of {SPLITS}, got {split!r}")
        init(*bound.args, **bound.kwargs)

    return wrapper
