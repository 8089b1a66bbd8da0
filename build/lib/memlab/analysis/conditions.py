"""A tiny condition language over flat ``key -> value`` mappings.

The paper's grids are encoded as data (unlearning-methods.md §8: "filters, applied in order"), and the
report splits rows into settings by their config (paper-results.md §2). Both need the same small
predicate: ``{key: spec, ...}`` holds when every key's spec holds.

A spec is a scalar (equality), a list (membership) or a mapping of operators:
``eq ne in not_in lt le gt ge contains``. A key missing from the mapping never matches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from memlab.errors import ConfigError

_MISSING = object()


def _num(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, int | float):
        return float(x)
    return None


def _equal(a: Any, b: Any) -> bool:
    na, nb = _num(a), _num(b)
    if na is not None and nb is not None:
        return math.isclose(na, nb, rel_tol=1e-12, abs_tol=0.0)
    return str(a) == str(b) if a is not None and b is not None else a is b


def _ordered(op: Callable[[float, float], bool]) -> Callable[[Any, Any], bool]:
    def check(value: Any, arg: Any) -> bool:
        a, b = _num(value), _num(arg)
        return a is not None and b is not None and op(a, b)

    return check


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": _equal,
    "ne": lambda v, a: not _equal(v, a),
    "in": lambda v, a: any(_equal(v, x) for x in a),
    "not_in": lambda v, a: not any(_equal(v, x) for x in a),
    "lt": _ordered(lambda x, y: x < y),
    "le": _ordered(lambda x, y: x <= y),
    "gt": _ordered(lambda x, y: x > y),
    "ge": _ordered(lambda x, y: x >= y),
    "contains": lambda v, a: v is not None and str(a) in str(v),
}


def spec_holds(value: Any, spec: Any) -> bool:
    """Whether one value satisfies one spec (scalar, list or operator mapping)."""
    if isinstance(spec, Mapping):
        unknown = set(spec) - set(_OPS)
        if unknown:
            raise ConfigError(
                f"unknown condition operator(s) {sorted(unknown)}; known: {sorted(_OPS)}"
            )
        return all(_OPS[op](value, arg) for op, arg in spec.items())
    if isinstance(spec, list | tuple):
        return _OPS["in"](value, spec)
    return _equal(value, spec)


def matches(condition: Mapping[str, Any] | None, values: Mapping[str, Any]) -> bool:
    """True when every ``key: spec`` of ``condition`` holds for ``values`` (empty condition: True)."""
    for key, spec in (condition or {}).items():
        value = values.get(key, _MISSING)
        if value is _MISSING or not spec_holds(value, spec):
            return False
    return True
