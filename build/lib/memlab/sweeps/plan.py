"""Sweep plans: the paper's grids, encoded as data and expanded into an explicit list of runs.

The reference launched its grids from nested Python loops with ad-hoc skips
(unlearning-methods.md §8, data-training-regularizers-finetuning.md §13). Here a grid is a YAML
mapping (``conf/experiment/paper/*.yaml``) with

- ``task``: which entry point runs it (``train``, ``unlearn``, ``finetune``, ``toy``);
- ``context``: named facts about the grid that filters may test (e.g. the checkpoint's depth);
- ``fixed``: overrides every run gets;
- ``axes``: a cartesian product, first axis varying slowest;
- ``rules``: ``{when, set, axes}`` — runs matching ``when`` get extra overrides and extra axes
  (per-method hyper-parameter loops);
- ``filters``: ``{when, reason}`` — runs matching ``when`` are dropped.

Conditions see the run's overrides plus ``context.<name>`` keys (see :mod:`memlab.analysis.conditions`).
The expansion is explicit, so its size can be asserted (167/163/166/162 per TinyMem checkpoint,
152 per Pythia model × step, 168 training runs) and printed by ``memlab.sweep dry_run=true``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from memlab.analysis.conditions import matches
from memlab.errors import ConfigError

_SAFE_VALUE = re.compile(r"^[\w./:@+\-]+$")
_SPEC_KEYS = {"name", "task", "context", "fixed", "axes", "rules", "filters"}


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: a task and its Hydra overrides, in a stable order."""

    task: str
    overrides: tuple[tuple[str, Any], ...]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.overrides)

    def override_strings(self) -> list[str]:
        """Hydra command-line overrides (``key=value``) for this run."""
        return [f"{key}={format_value(value)}" for key, value in self.overrides]

    def command(self) -> str:
        return " ".join([f"python -m memlab.{self.task}", *self.override_strings()])


@dataclass
class SweepPlan:
    """The expanded runs of one grid plus the name that groups them (W&B group, output folder)."""

    name: str
    task: str
    runs: list[PlannedRun] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.runs)

    def count_by(self, key: str) -> dict[Any, int]:
        """Number of runs per value of one override (e.g. per ``unlearn`` method)."""
        counts: dict[Any, int] = {}
        for run in self.runs:
            value = run.as_dict().get(key)
            counts[value] = counts.get(value, 0) + 1
        return counts


def format_value(value: Any) -> str:
    """Render a Python value in Hydra's override grammar (quoted when it has special characters)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{format_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _SAFE_VALUE.match(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _product(base: list[dict[str, Any]], axes: Mapping[str, Iterable[Any]]) -> list[dict[str, Any]]:
    keys = list(axes)
    values = []
    for key in keys:
        vals = axes[key]
        if not isinstance(vals, list | tuple):
            raise ConfigError(f"sweep axis '{key}' must be a list of values, got {vals!r}")
        values.append(list(vals))
    out = []
    for run in base:
        for combo in itertools.product(*values):
            out.append({**run, **dict(zip(keys, combo))})
    return out


def _view(run: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """What conditions see: the overrides plus ``context.<name>``."""
    return {**{f"context.{k}": v for k, v in context.items()}, **run}


def _apply_rule(runs: list[dict[str, Any]], rule: Mapping[str, Any], context: Mapping[str, Any]):
    out: list[dict[str, Any]] = []
    for run in runs:
        if matches(rule.get("when"), _view(run, context)):
            out.extend(_product([{**run, **(rule.get("set") or {})}], rule.get("axes") or {}))
        else:
            out.append(run)
    return out


def _check_spec(spec: Mapping[str, Any]) -> None:
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise ConfigError(f"unknown sweep key(s) {sorted(unknown)}; known: {sorted(_SPEC_KEYS)}")
    if not spec.get("task"):
        raise ConfigError(
            "sweep.task is not set; pick a grid, e.g. experiment=paper/unlearn_tinymem"
        )


def build_plan(spec: Mapping[str, Any]) -> SweepPlan:
    """Expand a grid spec (a plain mapping, e.g. ``OmegaConf.to_container(cfg.sweep)``) into runs."""
    _check_spec(spec)
    context = dict(spec.get("context") or {})
    runs = _product([dict(spec.get("fixed") or {})], spec.get("axes") or {})
    for rule in spec.get("rules") or []:
        runs = _apply_rule(runs, rule, context)
    for flt in spec.get("filters") or []:
        runs = [r for r in runs if not matches(flt.get("when"), _view(r, context))]
    task = str(spec["task"])
    planned = [PlannedRun(task, tuple(run.items())) for run in runs]
    return SweepPlan(name=str(spec.get("name") or task), task=task, runs=planned)


def describe(plan: SweepPlan, show: int = 10, by: str | None = None) -> str:
    """Human-readable summary printed by ``memlab.sweep dry_run=true``."""
    lines = [f"sweep '{plan.name}' (task {plan.task}): {len(plan)} runs"]
    if by:
        for value, n in plan.count_by(by).items():
            lines.append(f"  {by}={value}: {n}")
    for i, run in enumerate(plan.runs[:show]):
        lines.append(f"  [{i}] {run.command()}")
    if len(plan) > show:
        lines.append(f"  ... ({len(plan) - show} more)")
    return "\n".join(lines)
