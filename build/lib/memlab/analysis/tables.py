"""Markdown tables of best runs (what ``memlab.report`` prints and writes to ``best_runs.md``).

One row per selected run with the paper's reporting units (paper-results.md §4): memorization before
→ after in %, its relative change, utility before → after and its relative change, the score, ratio in
% of units/weights, and seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

HP_KEYS = ("unlearn.epochs", "unlearn.loss_weighting")


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return (
            f"{value:.{digits}f}" if abs(value) >= 10 ** (-digits) or value == 0 else f"{value:.2g}"
        )
    return str(value)


def markdown(df: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    """A GitHub-flavoured markdown table (no extra dependency)."""
    cols = list(columns or df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df[cols].itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    return "\n".join(lines)


def _utility(row: pd.Series, utility: str) -> tuple[Any, Any]:
    key = "util/ppl" if utility == "ppl" else "util/acc_mean"
    return row.get(f"before/{key}"), row.get(f"after/{key}")


def best_run_table(best: pd.DataFrame, group_by: Sequence[str], utility: str) -> pd.DataFrame:
    """The columns of the paper's tables for one setting's selected runs."""
    records = []
    for _, row in best.iterrows():
        u_before, u_after = _utility(row, utility)
        rec = {k: row.get(k) for k in group_by if k in best}
        rec.update(
            {
                "method": row.get("unlearn.method"),
                "ratio %": 100 * float(row.get("unlearn.ratio", math.nan)),
                **{k.split(".")[-1]: row.get(k) for k in HP_KEYS if k in best},
                "mem before": row.get("before/mem/perc"),
                "mem after": row.get("after/mem/perc"),
                "Δmem %": 100 * row.get("mem_rel", math.nan),
                f"{utility} before": u_before,
                f"{utility} after": u_after,
                f"Δ{utility} %": 100 * row.get("util_rel", math.nan),
                "score": row.get("score"),
                "seconds": row.get("cost/seconds"),
            }
        )
        records.append(rec)
    return pd.DataFrame(records)
