"""Short-name registries (OpenUnlearning style): every method, regularizer, dataset and model is
found by the name its YAML uses, and an unknown name fails with the list of known ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any


class ConfigError(ValueError):
    """A user-facing configuration error: the message is one line naming the key and allowed values."""


class Registry:
    """A name → object table with a clear error for unknown names."""

    def __init__(self, kind: str, key: str | None = None) -> None:
        self.kind = kind
        self.key = key  # the config key that selects an entry, named in error messages
        self._items: dict[str, Any] = {}

    def register(self, name: str) -> Callable[[Any], Any]:
        def decorator(obj: Any) -> Any:
            if name in self._items:
                raise KeyError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> Any:
        if name not in self._items:
            known = ", ".join(sorted(self._items))
            where = f"{self.key}=" if self.key else ""
            raise ConfigError(f"unknown {self.kind} {where}'{name}'; known: {known}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
