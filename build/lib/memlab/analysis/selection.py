"""Best run per (setting, method): the paper's selection criteria (paper-results.md §2).

Scores are relative changes against the unedited model (``before/*``), as fractions:

- **Pythia** (§2.1, verified on the published tables): ``Δmem + Δppl``, plus a penalty of **100**
  when memorization did not drop at all (Δmem == 0). Candidates for a method are restricted to runs
  that end **below 10 % memorization** when at least one such run exists, otherwise all its runs.
  This restriction is what reproduces all 64 method rows of ``best_pythia_unlearning_runs.csv``
  from ``all_pythia_unlearning_runs.csv`` (including the 2.8B@36000 Durable row that the plain
  minimum-score rule gets wrong; see ``docs/analysis.md``).
- **TinyMem math** (§2.2, verified): ``Δmem − mean_d Δacc_d`` over the five test distributions
  (7, 2, 3, 4, 5); no penalty, no candidate restriction.
- **TinyMem language** (§2.3, inferred): ``Δmem + Δppl``.

The minimum score wins; ties are all kept (the reference lists Slimming three times per Pythia cell,
once per epochs value, with identical metrics).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from memlab.analysis.conditions import matches
from memlab.errors import ConfigError

METHOD_KEY = "unlearn.method"
MEM = "mem/perc"


@dataclass(frozen=True)
class Criterion:
    """How one setting scores and filters its runs."""

    utility: str = "ppl"  # "ppl" (lower is better) or "acc" (higher is better)
    no_drop_penalty: float = 0.0  # added when memorization did not drop (Pythia: 100)
    candidate_mem_below: float | None = (
        None  # prefer runs ending below this % memorized (Pythia: 10)
    )
    mem_cutoff: float | None = None  # drop runs with after/mem/perc >= this
    ppl_cutoff: float | None = None  # drop runs with after/util/ppl >= this
    group_by: tuple[str, ...] = ()  # keys of one model/checkpoint (a "cell")

    def __post_init__(self) -> None:
        if self.utility not in ("ppl", "acc"):
            raise ConfigError(f"selection utility '{self.utility}' unknown; known: acc, ppl")


PYTHIA = Criterion("ppl", 100.0, 10.0, group_by=("model.name", "model.revision"))
MATH = Criterion("acc", group_by=("ckpt", "data.name", "artifact.kind", "model.n_layer", "seed"))
LANGUAGE = Criterion(
    "ppl", group_by=("ckpt", "data.name", "artifact.kind", "model.n_layer", "seed")
)


@dataclass(frozen=True)
class Setting:
    """A named setting: which rows belong to it (``when``: a condition or a list of alternatives)."""

    name: str
    criterion: Criterion
    when: Sequence[Mapping[str, Any]] = field(default_factory=list)

    def holds(self, row: Mapping[str, Any]) -> bool:
        return not self.when or any(matches(cond, row) for cond in self.when)


def relative(df: pd.DataFrame, metric: str) -> pd.Series:
    """(after − before) / before for one metric, as a fraction."""
    before = df[f"before/{metric}"].astype(float)
    return (df[f"after/{metric}"].astype(float) - before) / before


def accuracy_change(df: pd.DataFrame) -> pd.Series:
    """Mean relative accuracy change over the per-distribution accuracies present (``util/acc/<d>``)."""
    dists = [c.split("/", 3)[-1] for c in df if c.startswith("after/util/acc/")]
    dists = [d for d in dists if f"before/util/acc/{d}" in df]
    if not dists:
        return relative(df, "util/acc_mean")
    return pd.concat([relative(df, f"util/acc/{d}") for d in dists], axis=1).mean(axis=1)


def score_runs(df: pd.DataFrame, criterion: Criterion) -> pd.DataFrame:
    """Add ``mem_rel``, ``util_rel`` and ``score`` columns (fractions) to unlearning rows."""
    out = df.copy()
    out["mem_rel"] = relative(out, MEM)
    if criterion.utility == "acc":
        out["util_rel"] = accuracy_change(out)
        out["score"] = out["mem_rel"] - out["util_rel"]
    else:
        out["util_rel"] = relative(out, "util/ppl")
        out["score"] = out["mem_rel"] + out["util_rel"]
    out.loc[out["mem_rel"] == 0, "score"] += criterion.no_drop_penalty
    return out


def _within_cutoffs(df: pd.DataFrame, criterion: Criterion) -> pd.DataFrame:
    keep = pd.Series(True, index=df.index)
    if criterion.mem_cutoff is not None:
        keep &= df[f"after/{MEM}"] < criterion.mem_cutoff
    if criterion.ppl_cutoff is not None and "after/util/ppl" in df:
        keep &= df["after/util/ppl"] < criterion.ppl_cutoff
    return df[keep]


def _best_of_method(runs: pd.DataFrame, criterion: Criterion) -> pd.DataFrame:
    runs = runs[np.isfinite(runs["score"])]
    if criterion.candidate_mem_below is not None:
        low = runs[runs[f"after/{MEM}"] < criterion.candidate_mem_below]
        runs = low if not low.empty else runs
    if runs.empty:
        return runs
    best = runs["score"].min()
    return runs[np.isclose(runs["score"], best, rtol=0.0, atol=1e-12)]


def select_best(
    df: pd.DataFrame, criterion: Criterion, method_key: str = METHOD_KEY
) -> pd.DataFrame:
    """The minimum-score run(s) of every method in every cell (``criterion.group_by``)."""
    if df.empty:
        return df.assign(score=pd.Series(dtype=float))
    scored = _within_cutoffs(score_runs(df, criterion), criterion)
    keys = [k for k in criterion.group_by if k in scored] + [method_key]
    parts = [
        _best_of_method(g, criterion) for _, g in scored.groupby(keys, sort=False, dropna=False)
    ]
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts).sort_index() if parts else scored.iloc[0:0]


def unlearning_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Finished runs that carry before/after memorization (the candidates of any selection)."""
    keep = pd.Series(True, index=df.index)
    if "run/status" in df:
        keep &= df["run/status"] == "done"
    for col in (f"before/{MEM}", f"after/{MEM}", METHOD_KEY):
        if col not in df:
            return df.iloc[0:0]
        keep &= df[col].notna()
    return df[keep]


def assign_settings(df: pd.DataFrame, settings: Sequence[Setting]) -> pd.Series:
    """Name of the first setting whose condition each row satisfies (None when none does)."""
    records = df.to_dict("records")
    return pd.Series(
        [next((s.name for s in settings if s.holds(r)), None) for r in records], index=df.index
    )


def select_all(df: pd.DataFrame, settings: Sequence[Setting]) -> pd.DataFrame:
    """Best runs of every setting, with a ``setting`` column."""
    rows = unlearning_rows(df)
    if rows.empty:
        return rows.assign(setting=pd.Series(dtype=object), score=pd.Series(dtype=float))
    rows = rows.assign(setting=assign_settings(rows, settings))
    parts = [
        select_best(rows[rows["setting"] == s.name], s.criterion)
        for s in settings
        if (rows["setting"] == s.name).any()
    ]
    return pd.concat(parts) if parts else rows.iloc[0:0]


def settings_from_config(cfg: Mapping[str, Any]) -> list[Setting]:
    """Build settings from ``report.yaml``'s ``settings`` mapping (name → when + criterion fields)."""
    out = []
    for name, spec in cfg.items():
        spec = dict(spec)
        when = spec.pop("when", None) or []
        when = [when] if isinstance(when, Mapping) else list(when)
        spec["group_by"] = tuple(spec.get("group_by") or ())
        try:
            out.append(Setting(name, Criterion(**spec), when))
        except TypeError as err:
            raise ConfigError(f"report.settings.{name}: {err}") from err
    return out
