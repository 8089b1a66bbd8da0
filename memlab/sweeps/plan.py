"""Sweep plans: the paper's grids, encoded as data and expanded into an explicit list of runs.

The reference launched its grids from nested Python loops with ad-hoc skips (its
``localize_hp_sweep.py`` and Parsl launch scripts). Here a grid is a YAML mapping
(``conf/experiment/paper/*.yaml``) with

- ``task``: which entry point runs it (``train``, ``unlearn``, ``finetune``, or
  ``{config, target}`` for a task outside memlab, see :mod:`memlab.sweeps.tasks`);
- ``context``: named facts about the grid that filters may test (e.g. the checkpoint's depth);
- ``fixed``: overrides every run gets;
- ``axes``: a cartesian product, first axis varying slowest;
- ``rules``: ``{when, set, axes, format}`` — runs matching ``when`` get extra overrides and extra
  axes (per-method hyper-parameter loops), then ``format``: overrides built from templates such as
  ``"{context.ckpt_dir}/checkpoints/epoch={context.epoch:04d}.ckpt"`` (a placeholder names a key of
  the run's view, with an optional format spec; a null value makes the override null);
- ``filters``: ``{when, reason}`` — runs matching ``when`` are dropped;
- ``stages`` (instead of the keys above): grids run one after another, each with its own ``name``
  and task; a stage with ``each: {stage, context}`` is expanded once per run of an earlier stage
  (:func:`expand_each`), which is how a study's unlearning stage addresses its training runs.

Conditions and templates see the run's overrides plus ``context.<name>`` keys (see
:mod:`memlab.analysis.conditions`). A rule may also set or loop over ``context.<name>`` keys: those
are facts of the run (e.g. which training checkpoint it edits), visible to later rules and filters
but not passed to the task. The expansion is explicit, so its size can be asserted (167/163/166 per
TinyMem checkpoint, 152 per Pythia model × step, 168 training runs) and printed by
``memlab.sweep dry_run=true``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from memlab.analysis.conditions import matches
from memlab.errors import ConfigError
from memlab.sweeps.tasks import TaskSpec, get_task

_SAFE_VALUE = re.compile(r"^[\w./:@+\-]+$")
_PLACEHOLDER = re.compile(r"\{([\w.]+)(?::([^{}]*))?\}")
_SPEC_KEYS = {"name", "task", "context", "fixed", "axes", "rules", "filters", "each", "stages"}
_EACH_KEYS = {"stage", "context"}
_RULE_KEYS = {"when", "set", "axes", "format"}
CONTEXT = "context."


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: a task, its Hydra overrides in a stable order, and its own facts
    (``context.<name>`` keys that rules set for this run; not passed to the task)."""

    task: TaskSpec
    overrides: tuple[tuple[str, Any], ...]
    context: tuple[tuple[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The run's overrides and its own ``context.<name>`` facts."""
        return {**dict(self.context), **dict(self.overrides)}

    def override_strings(self) -> list[str]:
        """Hydra command-line overrides (``key=value``) for this run."""
        return [f"{key}={format_value(value)}" for key, value in self.overrides]

    def command(self) -> str:
        return " ".join([self.task.command(), *self.override_strings()])


@dataclass
class SweepPlan:
    """The expanded runs of one grid plus the name that groups them (W&B group, output folder)."""

    name: str
    task: TaskSpec
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


def fill_template(template: str, view: Mapping[str, Any]) -> Any:
    """``template`` with every ``{key}`` / ``{key:spec}`` replaced by ``view[key]`` (formatted with
    ``spec``); None when a named value is null, so a missing checkpoint directory reads ``null``."""
    names = [m.group(1) for m in _PLACEHOLDER.finditer(template)]
    unknown = [n for n in names if n not in view]
    if unknown:
        raise ConfigError(f"sweep rule format '{template}': unknown key(s) {unknown}")
    if any(view[n] is None for n in names):
        return None
    return _PLACEHOLDER.sub(lambda m: format(view[m.group(1)], m.group(2) or ""), template)


def _apply_rule(runs: list[dict[str, Any]], rule: Mapping[str, Any], context: Mapping[str, Any]):
    unknown = set(rule) - _RULE_KEYS
    if unknown:
        raise ConfigError(
            f"unknown sweep rule key(s) {sorted(unknown)}; known: {sorted(_RULE_KEYS)}"
        )
    out: list[dict[str, Any]] = []
    for run in runs:
        if not matches(rule.get("when"), _view(run, context)):
            out.append(run)
            continue
        for new in _product([{**run, **(rule.get("set") or {})}], rule.get("axes") or {}):
            view = _view(new, context)
            formatted = {
                k: fill_template(str(t), view) for k, t in (rule.get("format") or {}).items()
            }
            out.append({**new, **formatted})
    return out


def _check_spec(spec: Mapping[str, Any]) -> None:
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise ConfigError(f"unknown sweep key(s) {sorted(unknown)}; known: {sorted(_SPEC_KEYS)}")
    if not spec.get("task"):
        raise ConfigError(
            "sweep.task is not set; pick a grid, e.g. experiment=paper/unlearn_tinymem"
        )


def _planned(task: TaskSpec, run: Mapping[str, Any]) -> PlannedRun:
    overrides = tuple((k, v) for k, v in run.items() if not k.startswith(CONTEXT))
    facts = tuple((k, v) for k, v in run.items() if k.startswith(CONTEXT))
    return PlannedRun(task, overrides, facts)


def build_plan(spec: Mapping[str, Any]) -> SweepPlan:
    """Expand a grid spec (a plain mapping, e.g. ``OmegaConf.to_container(cfg.sweep)``) into runs."""
    _check_spec(spec)
    context = dict(spec.get("context") or {})
    runs = _product([dict(spec.get("fixed") or {})], spec.get("axes") or {})
    for rule in spec.get("rules") or []:
        runs = _apply_rule(runs, rule, context)
    for flt in spec.get("filters") or []:
        runs = [r for r in runs if not matches(flt.get("when"), _view(r, context))]
    task = get_task(spec["task"])
    planned = [_planned(task, run) for run in runs]
    return SweepPlan(name=str(spec.get("name") or task.name), task=task, runs=planned)


def stage_specs(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The grids of a sweep in launch order: ``spec["stages"]`` when given, else ``[spec]``.

    A multi-stage sweep runs its stages one after another (each a grid with its own task); a stage
    with ``each: {stage: <earlier stage>, context: {<name>: <override key>}}`` is expanded once per
    run of that earlier stage (:func:`expand_each`), so it can address that run's checkpoints.
    """
    stages = spec.get("stages")
    if not stages:
        return [dict(spec)]
    names: list[str] = []
    for stage in stages:
        each = stage.get("each") or {}
        if set(each) - _EACH_KEYS or (each and each.get("stage") not in names):
            raise ConfigError(
                f"sweep stage '{stage.get('name')}': each={each} must be "
                f"{{stage: <an earlier stage of {names}>, context: {{name: override key}}}}"
            )
        names.append(str(stage.get("name")))
    return [dict(stage) for stage in stages]


def expand_each(spec: Mapping[str, Any], parents: list[tuple[str, Mapping[str, Any]]]) -> SweepPlan:
    """One copy of the grid per parent run ``(run_dir, its overrides and facts)``: its context gets
    ``run_dir`` and, per ``each.context`` entry, the parent's value of an override key (e.g. the
    depth of the training run whose checkpoints an unlearning stage edits)."""
    each = spec["each"]
    grid = {k: v for k, v in spec.items() if k != "each"}
    runs: list[PlannedRun] = []
    for run_dir, parent in parents:
        facts = {name: parent.get(key) for name, key in (each.get("context") or {}).items()}
        context = {**(spec.get("context") or {}), "run_dir": run_dir, **facts}
        runs.extend(build_plan({**grid, "context": context}).runs)
    task = get_task(spec["task"])
    return SweepPlan(name=str(spec.get("name") or task.name), task=task, runs=runs)


def describe(plan: SweepPlan, show: int = 10, by: str | None = None) -> str:
    """Human-readable summary printed by ``memlab.sweep dry_run=true``."""
    lines = [f"sweep '{plan.name}' (task {plan.task.name}): {len(plan)} runs"]
    if by:
        for value, n in plan.count_by(by).items():
            lines.append(f"  {by}={value}: {n}")
    for i, run in enumerate(plan.runs[:show]):
        lines.append(f"  [{i}] {run.command()}")
    if len(plan) > show:
        lines.append(f"  ... ({len(plan) - show} more)")
    return "\n".join(lines)
