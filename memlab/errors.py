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
