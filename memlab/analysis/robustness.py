"""Robustness of mitigations: a table and a relearning figure from ``memlab.audit`` results rows.

:func:`robustness_table` gives one row per (checkpoint, method) — the audited model of each
unlearning Edit, the unedited base (``none``) and, where an audit ran with ``oracle=true``, the
retrain oracle — with memorization and accuracy next to the robustness audits: relearning AUC and
steps to half the base memorization, the strongest membership-inference attack, memorization after
int4 quantization. :func:`plot_relearning` draws the relearning curves of every method of one
checkpoint with the base model and the oracle. Pure functions of the store's DataFrame
(``ResultsStore.load()``); docs/audit.md explains how to read them.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from memlab.analysis.plots import method_colors, pyplot, save_png

AUDIT_TASK = "audit"
ORACLE = "oracle"
ATTACKS = ("loss", "zlib", "min_k", "min_k_plus")
STEP_KEY = re.compile(r"^audit/relearn/(?P<kind>[a-z_]+)/step(?P<step>\d+)/mem/perc$")


def audit_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The finished ``audit`` rows of a results-store DataFrame."""
    if df.empty or "run/task" not in df:
        return df.iloc[0:0]
    done = df["run/task"].eq(AUDIT_TASK)
    if "run/status" in df:
        done &= df["run/status"].eq("done")
    return df[done]


def _get(row: pd.Series, key: str) -> float:
    value = row.get(key)
    return math.nan if value is None or pd.isna(value) else float(value)


def strongest_attack(row: pd.Series, prefix: str = "") -> tuple[float, float]:
    """The highest MIA AUC over the attacks and the highest TPR at 1 % FPR."""
    aucs = [_get(row, f"{prefix}audit/mia/{a}/auc") for a in ATTACKS]
    tprs = [_get(row, f"{prefix}audit/mia/{a}/tpr_at_1fpr") for a in ATTACKS]
    aucs, tprs = [v for v in aucs if not math.isnan(v)], [v for v in tprs if not math.isnan(v)]
    return (max(aucs) if aucs else math.nan, max(tprs) if tprs else math.nan)


def checkpoint_of(row: pd.Series) -> str:
    """The pre-mitigation checkpoint an audit row belongs to (``base_ckpt``, else ``ckpt``)."""
    base = row.get("base_ckpt")
    return str(row.get("ckpt") if base is None or pd.isna(base) else base)


def label_of(row: pd.Series) -> str:
    """The audited model's name: ``audit/label`` (the Edit's method, ``none`` for the base)."""
    label = row.get("audit/label")
    return "none" if label is None or pd.isna(label) else str(label)


def robustness_record(row: pd.Series, method: str, prefix: str = "") -> dict:
    """One table row from an audit row (``prefix`` = ``oracle/`` for its oracle)."""
    auc, tpr = strongest_attack(row, prefix)
    return {
        "ckpt": checkpoint_of(row),
        "method": method,
        "mem %": _get(row, f"{prefix}mem/perc"),
        "acc %": _get(row, f"{prefix}util/acc_mean"),
        "relearn auc": _get(row, f"{prefix}audit/relearn/forget_subset/auc"),
        "relearn steps to ½": _get(row, f"{prefix}audit/relearn/forget_subset/steps_to_half"),
        "clean-ft auc": _get(row, f"{prefix}audit/relearn/clean/auc"),
        "MIA AUC": auc,
        "TPR@1%FPR": tpr,
        "int4 mem %": _get(row, f"{prefix}audit/quant/int4/mem/perc"),
    }


def robustness_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (checkpoint, audited method), plus one oracle row per checkpoint that has one."""
    records, oracles = [], {}
    for _, row in audit_rows(df).iterrows():
        records.append(robustness_record(row, label_of(row)))
        if not pd.isna(row.get(f"{ORACLE}/mem/perc", math.nan)):
            oracles[checkpoint_of(row)] = robustness_record(row, ORACLE, f"{ORACLE}/")
    table = pd.DataFrame([*records, *oracles.values()])
    if table.empty:
        return table
    order = {"none": 0, ORACLE: 2}
    rank = table["method"].map(lambda m: order.get(m, 1))
    return (
        table.assign(_rank=rank)
        .sort_values(["ckpt", "_rank", "method"])
        .drop(columns="_rank")
        .drop_duplicates(["ckpt", "method"], keep="last")
        .reset_index(drop=True)
    )


def relearning_curve(row: pd.Series, *, kind: str = "forget_subset", prefix: str = "") -> pd.Series:
    """Memorization (%) of the held-out forget rows by relearning step."""
    points = {}
    for key, value in row.items():
        match = STEP_KEY.match(key[len(prefix) :]) if key.startswith(prefix) else None
        if match and match["kind"] == kind and not pd.isna(value):
            points[int(match["step"])] = float(value)
    return pd.Series(points, dtype=float).sort_index()


def plot_relearning(
    df: pd.DataFrame, out: str | Path, *, ckpt: str | None = None, kind: str = "forget_subset"
) -> Path:
    """Relearning curves of every audited method of one checkpoint (the first one when ``ckpt`` is
    None), with the base model (``none``) and the retrain oracle, against the base's memorization."""
    rows = audit_rows(df)
    if rows.empty:
        raise ValueError("no audit rows to plot")
    checkpoints = rows.apply(checkpoint_of, axis=1)
    rows = rows[checkpoints == (ckpt if ckpt is not None else checkpoints.iloc[0])]
    curves = {label_of(r): relearning_curve(r, kind=kind) for _, r in rows.iterrows()}
    oracle_key = f"{ORACLE}/mem/perc"
    with_oracle = rows[rows[oracle_key].notna()] if oracle_key in rows else rows.iloc[0:0]
    if len(with_oracle):
        curves[ORACLE] = relearning_curve(with_oracle.iloc[-1], kind=kind, prefix=f"{ORACLE}/")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    colors = method_colors(list(curves))
    for method, curve in sorted(curves.items()):
        style = {"none": ("k", "--"), ORACLE: ("grey", ":")}.get(method, (colors[method], "-"))
        ax.plot(
            curve.index + 1,
            curve.values,
            marker="o",
            ms=3,
            color=style[0],
            ls=style[1],
            label=method,
        )
    base = rows["audit/relearn/heldout/base/mem/perc"].iloc[0]
    ax.axhline(base / 2, color="k", lw=0.6, alpha=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("relearning step + 1")
    ax.set_ylabel("memorization of held-out forget rows (%)")
    ax.set_title(f"relearning ({kind}); line: half the base model's memorization")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_png(fig, out)
