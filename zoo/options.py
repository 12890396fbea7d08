"""Option checking shared by the model registry, the training recipes and the datasets.

One type checker and one closest-name hint, so that every "unknown name" and "wrong type" error in jellyzoo reads
the same:

- `check_option(key, value, expected)`: a typed value (``build(hidden_size=256)``) checked against a type hint,
  with the unambiguous conversions (int -> float, list <-> tuple, str -> Path).
- `parse_option(key, text, expected)`: a command-line string (``hidden_size=256``) parsed into the hinted type.
- `check_options(options, hints)`: both of the above for a mapping of options, plus the closest-name hint for an
  unknown key.
- `unknown_name(kind, name, known)`: the message for a failed lookup, naming the closest known names.
- `check_range(key, value, low=..., high=...)`: a value of the right type but outside what a model or dataset
  can be built with (``hidden_size=0``).

Supported hints: ``Any``, ``bool``, ``int``, ``float``, ``str``, ``Path``, ``None``, ``Literal[...]``,
``X | Y`` / ``Optional[X]``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``list[X]``, ``dict[K, V]`` and plain classes
(checked with ``isinstance``).
"""

from __future__ import annotations

import ast
import difflib
import inspect
import os
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "check_option",
    "check_options",
    "check_range",
    "closest_names",
    "declared_options",
    "parse_option",
    "type_name",
    "unknown_name",
]

_MISMATCH = object()
_NONE_WORDS = ("None",)
_TRUE_WORDS = ("True", "true")
_FALSE_WORDS = ("False", "false")


def closest_names(name: str, known: Iterable[str], n: int = 5) -> list[str]:
    """Up to `n` names of `known` that look like `name`, most similar first (difflib ratio >= 0.5)."""
    return difflib.get_close_matches(name, list(known), n=n, cutoff=0.5)


def unknown_name(kind: str, name: str, known: Iterable[str], *, list_all: bool = False) -> str:
    """The error message for a `name` that is not among `known`.

    Lookups in a registry (``list_all=False``) name the closest entries, or all of them when none is close:
    ``unknown model 'spikgru2plu'; closest: spikgru2plus, spikgru2``. Option and field names (``list_all=True``)
    add the full list: ``unknown option 'hiden' (did you mean hidden?); valid options: bias, classes, hidden``.
    """
    known = sorted(known)
    close = closest_names(name, known)
    if list_all:
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        return f"unknown {kind} {name!r}{hint}; valid {kind}s: {', '.join(known) or '(none)'}"
    if close:
        return f"unknown {kind} {name!r}; closest: {', '.join(close)}"
    return f"unknown {kind} {name!r}; available: {', '.join(known) or '(none)'}"


def type_name(expected: Any) -> str:
    """Readable name of a type hint for error messages (``int``, ``float | None``, ``Literal['a', 'b']``)."""
    if expected is type(None):
        return "None"
    if typing.get_origin(expected) is None and isinstance(expected, type):
        return expected.__name__
    return str(expected).replace("typing.", "").replace("pathlib.", "")


def _mismatch(key: str, value: Any, expected: Any, kind: str, valid: Iterable[str]) -> TypeError:
    names = sorted(valid)
    listing = f"; valid {kind}s: {', '.join(names)}" if names else ""
    return TypeError(f"{kind} {key!r} expects {type_name(expected)}, got {value!r}{listing}")


def check_option(key: str, value: Any, expected: Any, *, kind: str = "option", valid: Iterable[str] = ()) -> Any:
    """`value` checked against the type hint `expected`, returned in that type.

    Conversions happen only where the intent is unambiguous: an int for a float (``2 -> 2.0``), a list for a tuple
    (and back; JSON has no tuples), a str or ``os.PathLike`` for a ``Path``. A bool is never an int or a float.

    Raises:
        TypeError: ``option 'hidden' expects int, got 2.5; valid options: ...`` (`kind` and `valid` fill the
            wording).
    """
    converted = _convert(value, expected)
    if converted is _MISMATCH:
        raise _mismatch(key, value, expected, kind, valid)
    return converted


def parse_option(key: str, text: str, expected: Any, *, kind: str = "option", valid: Iterable[str] = ()) -> Any:
    """A command-line string parsed into the type hint `expected` (``"256"`` -> 256 for an ``int`` option).

    ``bool`` reads True/False/true/false; ``None`` reads None; ``tuple``/``list`` read a comma
    list with or without brackets (``32,64`` or ``(32, 64)``); ``Literal`` reads a choice as written; ``str`` takes
    the text as it is; dicts and other hints read a Python literal.

    Raises:
        TypeError: the same message as `check_option`, e.g. ``option 'hidden' expects int, got 'abc'``.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_option expects the command-line text as a str, got {type(text).__name__}")
    parsed = _parse(text.strip(), expected)
    if parsed is _MISMATCH:
        raise _mismatch(key, text, expected, kind, valid)
    return parsed


def check_options(
    options: Mapping[str, Any],
    hints: Mapping[str, Any],
    *,
    kind: str = "option",
    owner: str = "",
    parse: bool = False,
) -> dict[str, Any]:
    """Every item of `options` checked against `hints` (option name -> type hint); returns the converted values.

    With ``parse=True`` string values are parsed with `parse_option` (values from the command line); other values
    are checked with `check_option` either way. `owner` (e.g. the model name) prefixes the messages.

    Raises:
        TypeError: an unknown name (with the closest names and the full list) or a value of the wrong type.
    """
    prefix = f"{owner}: " if owner else ""
    checked = {}
    for key, value in options.items():
        if key not in hints:
            raise TypeError(prefix + unknown_name(kind, key, hints, list_all=True))
        try:
            if parse and isinstance(value, str):
                checked[key] = parse_option(key, value, hints[key], kind=kind, valid=hints)
            else:
                checked[key] = check_option(key, value, hints[key], kind=kind, valid=hints)
        except TypeError as error:
            raise TypeError(prefix + str(error)) from None
    return checked


def declared_options(function: Callable[..., Any], *, skip: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """The keyword options of `function` as ``(defaults, type hints)``, after its first `skip` parameters.

    Each option needs a default and a type hint, and ``*args`` / ``**kwargs`` are refused, so that the options can be
    listed and checked before `function` is called.

    Raises:
        TypeError: naming the parameter that breaks one of these rules.
    """
    hints = typing.get_type_hints(function)
    name = getattr(function, "__qualname__", repr(function))
    defaults: dict[str, Any] = {}
    for parameter in list(inspect.signature(function).parameters.values())[skip:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"{name} must list its options explicitly, not *{parameter.name}")
        if parameter.default is parameter.empty:
            raise TypeError(f"{name}: option {parameter.name!r} needs a default")
        if parameter.name not in hints:
            raise TypeError(f"{name}: option {parameter.name!r} needs a type hint")
        defaults[parameter.name] = parameter.default
    return defaults, {key: hints[key] for key in defaults}


def _union_members(expected: Any) -> tuple[Any, ...]:
    if typing.get_origin(expected) in (typing.Union, types.UnionType):
        return typing.get_args(expected)
    return ()


def _convert(value: Any, expected: Any) -> Any:
    if expected is Any:
        return value
    members = _union_members(expected)
    if members:
        for member in members:
            converted = _convert(value, member)
            if converted is not _MISMATCH:
                return converted
        return _MISMATCH
    origin = typing.get_origin(expected)
    args = typing.get_args(expected)
    if origin is typing.Literal:
        matches = [choice for choice in args if type(choice) is type(value) and choice == value]
        return matches[0] if matches else _MISMATCH
    if expected is type(None):
        return value if value is None else _MISMATCH
    if expected is bool:
        return value if isinstance(value, bool) else _MISMATCH
    if expected is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _MISMATCH
    if expected is float:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else _MISMATCH
    if isinstance(expected, type) and issubclass(expected, Path):
        return expected(value) if isinstance(value, (str, os.PathLike)) else _MISMATCH
    if origin in (tuple, list):
        return _convert_sequence(value, origin, args)
    if origin is dict:
        if not isinstance(value, dict):
            return _MISMATCH
        key_type, value_type = args or (Any, Any)
        pairs = [(_convert(k, key_type), _convert(v, value_type)) for k, v in value.items()]
        return _MISMATCH if any(k is _MISMATCH or v is _MISMATCH for k, v in pairs) else dict(pairs)
    if origin is not None:
        return value if isinstance(value, origin) else _MISMATCH
    return value if isinstance(value, expected) else _MISMATCH


def _convert_sequence(value: Any, origin: type, args: tuple[Any, ...]) -> Any:
    if not isinstance(value, (tuple, list)):
        return _MISMATCH
    return _sequence_of(list(value), origin, args, _convert)


def _sequence_of(items: list[Any], origin: type, args: tuple[Any, ...], convert: Callable[[Any, Any], Any]) -> Any:
    """`origin(convert(item, item_type) ...)`: one item type per slot for a fixed-length tuple hint, else `args[0]`."""
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(items) != len(args):
            return _MISMATCH
        converted = [convert(item, item_type) for item, item_type in zip(items, args, strict=True)]
    else:
        item_type = args[0] if args else Any
        converted = [convert(item, item_type) for item in items]
    return _MISMATCH if any(item is _MISMATCH for item in converted) else origin(converted)


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _MISMATCH


def _parse(text: str, expected: Any) -> Any:
    if expected is Any:
        value = _literal(text)
        return text if value is _MISMATCH else value
    members = _union_members(expected)
    if members:
        if type(None) in members and text in _NONE_WORDS:
            return None
        # text is a valid str, so a str member is tried last: "3" for `int | str` is the int 3
        ordered = sorted((m for m in members if m is not type(None)), key=lambda member: member is str)
        for member in ordered:
            parsed = _parse(text, member)
            if parsed is not _MISMATCH:
                return parsed
        return _MISMATCH
    origin = typing.get_origin(expected)
    if origin is typing.Literal:
        for choice in typing.get_args(expected):
            if text == str(choice) or text == repr(choice):
                return choice
        return _MISMATCH
    if expected is type(None):
        return None if text in _NONE_WORDS else _MISMATCH
    if expected is bool:
        return True if text in _TRUE_WORDS else False if text in _FALSE_WORDS else _MISMATCH
    if expected is str:
        return text
    if isinstance(expected, type) and issubclass(expected, Path):
        return expected(text) if text else _MISMATCH
    if expected in (int, float):
        try:
            return expected(text)
        except ValueError:
            return _MISMATCH
    if origin in (tuple, list):
        return _parse_sequence(text, expected, origin)
    value = _literal(text)
    return _MISMATCH if value is _MISMATCH else _convert(value, expected)


def _parse_sequence(text: str, expected: Any, origin: type) -> Any:
    value = _literal(text)
    if isinstance(value, (tuple, list)):
        return _convert(value, expected)
    inner = text[1:-1] if text[:1] + text[-1:] in ("()", "[]") else text
    words = [word.strip() for word in inner.split(",") if word.strip()]
    return _sequence_of(words, origin, typing.get_args(expected), _parse)


def check_range(
    key: str,
    value: float,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    owner: str = "",
    kind: str = "option",
) -> None:
    """Check that `value` lies in the range [low, high] (bounds optional; ``*_open`` excludes a bound).

    Raises:
        ValueError: ``stereospike: option 'widths[1]' expects a value >= 1, got 0`` (`owner` prefixes the message).
    """
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if not (below or above):
        return
    if low is not None and high is not None:
        expected = f"a value in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        expected = f"a value {'>' if low_open else '>='} {low:g}"
    else:
        expected = f"a value {'<' if high_open else '<='} {high:g}"
    prefix = f"{owner}: " if owner else ""
    raise ValueError(f"{prefix}{kind} {key!r} expects {expected}, got {value!r}")
