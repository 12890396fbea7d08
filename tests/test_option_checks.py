"""The one option checker (typed values and command-line text) and the one closest-name hint."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import pytest

from zoo.options import (
    check_option,
    check_options,
    check_range,
    closest_names,
    declared_options,
    parse_option,
    type_name,
    unknown_name,
)


@pytest.mark.parametrize(
    ("value", "hint", "expected"),
    [
        (3, int, 3),
        (3, float, 3.0),
        (2.5, float, 2.5),
        (True, bool, True),
        ("a", str, "a"),
        ("runs/x", Path, Path("runs/x")),
        ("b", Literal["a", "b"], "b"),
        (None, int | None, None),
        (4, Optional[int], 4),  # noqa: UP045  (the typing spelling must work too)
        ([32, 64], tuple[int, ...], (32, 64)),
        ((1, 2.5), tuple[int, float], (1, 2.5)),
        ((1, 2), list[float], [1.0, 2.0]),
        ({"a": 1}, dict[str, float], {"a": 1.0}),
        (object, Any, object),
    ],
)
def test_check_option_accepts_and_converts(value: Any, hint: Any, expected: Any) -> None:
    converted = check_option("x", value, hint)
    assert converted == expected and type(converted) is type(expected)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (2.5, int),
        (True, int),
        (True, float),
        (1, bool),
        ("1", int),
        (1, str),
        ("c", Literal["a", "b"]),
        (1, Literal[True]),
        ("x", int | None),
        ([1, "a"], tuple[int, ...]),
        ((1, 2, 3), tuple[int, int]),
        ({"a": "b"}, dict[str, int]),
        (3, Path),
    ],
)
def test_check_option_rejects_with_one_wording(value: Any, hint: Any) -> None:
    with pytest.raises(TypeError) as error:
        check_option("x", value, hint, valid=["y", "x"])
    assert str(error.value) == f"option 'x' expects {type_name(hint)}, got {value!r}; valid options: x, y"


@pytest.mark.parametrize(
    ("text", "hint", "expected"),
    [
        ("256", int, 256),
        ("1e-3", float, 1e-3),
        ("3", float, 3.0),
        ("true", bool, True),
        ("False", bool, False),
        ("cosine", str, "cosine"),
        ("None", str, "None"),
        ("ssc", Literal["shd", "ssc"], "ssc"),
        ("2", Literal[1, 2], 2),
        ("None", float | None, None),
        ("0.5", float | None, 0.5),
        ("3", int | str, 3),
        ("abc", int | str, "abc"),
        ("32,64", tuple[int, ...], (32, 64)),
        ("(32, 64)", tuple[int, ...], (32, 64)),
        ("[1, 2]", list[float], [1.0, 2.0]),
        ("accuracy,top5", tuple[str, ...], ("accuracy", "top5")),
        ("accuracy", tuple[str, ...], ("accuracy",)),
        ("", tuple[str, ...], ()),
        ("1,2", tuple[int, int], (1, 2)),
        ("runs/a", Path, Path("runs/a")),
        ("{'lr': 1}", dict[str, float], {"lr": 1.0}),
        ("(1, 'a')", Any, (1, "a")),
        ("plain words", Any, "plain words"),
    ],
)
def test_parse_option_reads_command_line_text(text: str, hint: Any, expected: Any) -> None:
    parsed = parse_option("x", text, hint)
    assert parsed == expected and type(parsed) is type(expected)


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("abc", int),
        ("2.5", int),
        ("1", bool),
        ("yes", bool),
        ("lif", Literal["shd", "ssc"]),
        ("none", float | None),
        ("1,a", tuple[int, ...]),
        ("1,2,3", tuple[int, int]),
        ("", Path),
        ("{'lr': 'a'}", dict[str, float]),
    ],
)
def test_parse_option_rejects_with_the_same_wording(text: str, hint: Any) -> None:
    with pytest.raises(TypeError) as error:
        parse_option("x", text, hint)
    assert str(error.value) == f"option 'x' expects {type_name(hint)}, got {text!r}"


def test_check_options_names_the_owner_and_hints_unknown_names() -> None:
    hints = {"hidden_size": int, "dropout": float, "mode": Literal["a", "b"]}
    assert check_options({"hidden_size": "16", "dropout": "0.5"}, hints, parse=True) == {
        "hidden_size": 16,
        "dropout": 0.5,
    }
    assert check_options({"dropout": 1}, hints) == {"dropout": 1.0}
    with pytest.raises(TypeError, match=r"^m: option 'hidden_size' expects int, got '16'; valid options: dropout, "):
        check_options({"hidden_size": "16"}, hints, owner="m")
    with pytest.raises(
        TypeError, match=r"^m: unknown option 'hiden_size' \(did you mean hidden_size\?\); valid options"
    ):
        check_options({"hiden_size": 3}, hints, owner="m")
    with pytest.raises(TypeError, match=r"^unknown field 'zzz'; valid fields: dropout, hidden_size, mode$"):
        check_options({"zzz": 3}, hints, kind="field")


def test_unknown_name_lists_the_closest_or_everything() -> None:
    known = ["spikgru2plus", "spikgru2", "sparch-lif"]
    assert unknown_name("model", "spikgru2plu", known) == "unknown model 'spikgru2plu'; closest: spikgru2plus, spikgru2"
    assert unknown_name("model", "zzz", known) == "unknown model 'zzz'; available: sparch-lif, spikgru2, spikgru2plus"
    assert unknown_name("model", "zzz", []) == "unknown model 'zzz'; available: (none)"
    assert closest_names("lrr", ["lr", "loss", "epochs"]) == ["lr"]


def test_declared_options_need_defaults_and_hints() -> None:
    def good(root: str, hidden: int = 4, rate: float | None = None) -> None: ...

    def no_hint(hidden=4) -> None: ...  # noqa: ANN001

    def no_default(hidden: int) -> None: ...

    def variadic(**options: int) -> None: ...

    assert declared_options(good, skip=1) == ({"hidden": 4, "rate": None}, {"hidden": int, "rate": float | None})
    with pytest.raises(TypeError, match="option 'hidden' needs a type hint"):
        declared_options(no_hint)
    with pytest.raises(TypeError, match="option 'hidden' needs a default"):
        declared_options(no_default)
    with pytest.raises(TypeError, match=r"must list its options explicitly, not \*options"):
        declared_options(variadic)


def test_check_range_names_the_bound_that_was_broken() -> None:
    check_range("hidden_size", 1, low=1)
    check_range("dropout", 0.0, low=0, high=1, high_open=True)
    cases = [
        ({"low": 1}, 0, "expects a value >= 1, got 0"),
        ({"low": 0, "low_open": True}, 0, "expects a value > 0, got 0"),
        ({"high": 1, "high_open": True}, 1.0, "expects a value < 1, got 1.0"),
        ({"low": 0, "high": 1, "high_open": True}, 1.5, "expects a value in [0, 1), got 1.5"),
        ({"low": 0, "high": 1}, -0.1, "expects a value in [0, 1], got -0.1"),
    ]
    for bounds, value, message in cases:
        with pytest.raises(ValueError) as error:
            check_range("x", value, owner="m", **bounds)
        assert str(error.value) == f"m: option 'x' {message}"
