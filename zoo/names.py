"""`NameTable`: one table of registered names, with the clash check and the closest-name lookup written once.

Used by every registry that hands things out by name besides the model registry: datasets (`zoo.datasets`),
training recipes, losses, metrics and step hooks (`zoo.train`). A name is registered once; registering it again
(e.g. a plugin reusing a built-in name) is a `ConfigError` that names the module holding the first registration.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Generic, TypeVar

from zoo.errors import ConfigError
from zoo.options import unknown_name

__all__ = ["NameTable"]

T = TypeVar("T")


class NameTable(Generic[T]):
    """Registered values of one `kind` (``"dataset"``, ``"metric"``, ...) under unique string names.

    The `origin` of a value is the module that registered it, when known (for the clash message).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._values: dict[str, T] = {}
        self._origins: dict[str, str | None] = {}

    def add(self, name: str, value: T, origin: str | None = None) -> T:
        """Register `value` as `name`; `ConfigError` if `name` is not a non-empty str or is taken."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a {self.kind} name must be a non-empty str, got {name!r}")
        if name in self._values:
            first = f" (by {self._origins[name]})" if self._origins[name] else ""
            again = f" from {origin}" if origin else ""
            raise ConfigError(
                f"{self.kind} {name!r} is already registered{first}; registering it again{again} would replace it: "
                "choose another name"
            )
        self._values[name] = value
        self._origins[name] = origin
        return value

    def get(self, name: str) -> T:
        """The value registered as `name`; `ConfigError` naming the closest registered names if there is none."""
        if name not in self._values:
            raise ConfigError(unknown_name(self.kind, str(name), self._values))
        return self._values[name]

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted registered names, optionally only those matching the fnmatch `pattern`."""
        names = sorted(self._values)
        return names if pattern is None else [name for name in names if fnmatch.fnmatchcase(name, pattern)]

    def origin(self, name: str) -> str | None:
        """The module that registered `name` (None if the registration did not say)."""
        self.get(name)
        return self._origins[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._values)
