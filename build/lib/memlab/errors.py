"""The one user-facing error type and the one name lookup every table uses.

A :class:`ConfigError` is bad input the user can fix: a key with a wrong value, a missing or
corrupted file. Entry points print it as one line, ``memlab: error: <message>``, and exit with 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A user-facing configuration error: the message is one line naming the key and allowed values."""


class RunError(RuntimeError):
    """A run that cannot go on (a non-finite loss, a failed rank): the entry point prints one line,
    records a ``failed`` results row and exits with status 1."""


def lookup(table: Mapping[str, T], name: Any, *, kind: str, key: str) -> T:
    """``table[name]``, or one line naming the config ``key`` and the known names."""
    if name not in table:
        raise ConfigError(f"{key}={name}: unknown {kind}; known: {', '.join(sorted(table))}")
    return table[name]


class Registry:
    """A name → object table filled by a decorator (being replaced by explicit tables + lookup)."""

    def __init__(self, kind: str, key: str | None = None) -> None:
        self.kind = kind
        self.key = key or kind
        self._items: dict[str, Any] = {}

    def register(self, name: str):
        def decorator(obj: Any) -> Any:
            if name in self._items:
                raise KeyError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> Any:
        return lookup(self._items, name, kind=self.kind, key=self.key)

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self):
        return iter(self.names())
