"""Report figures as PNG (matplotlib, Agg backend: no display needed on clusters or CI).

- :func:`plot_mem_vs_utility` — the paper's scatter plots: memorization left after an edit against the
  model's utility (perplexity for Pythia / language TinyMem, mean accuracy for math TinyMem), one
  colour per method, every run faint, each method's best run highlighted and the
  unedited model as a star; one panel per model/checkpoint cell.
- :func:`plot_memorization_over_training` — % memorized against training epoch/step (paper §5,
  ), one line per group (e.g. depth).
- :func:`plot_cost` — seconds per method (median, min–max), log scale: the paper's cost comparison
  (Greedy ≫ BalancedSubnet ≫ Durable).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MEM_AFTER, MEM_BEFORE = "after/mem/perc", "before/mem/perc"
UTILITY = {"ppl": ("util/ppl", "perplexity"), "acc": ("util/acc_mean", "mean test accuracy (%)")}


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def method_colors(methods: Sequence[str]) -> dict[str, Any]:
    plt = pyplot()
    cmap = plt.get_cmap("tab20" if len(methods) > 10 else "tab10")
    return {m: cmap(i % cmap.N) for i, m in enumerate(sorted(methods))}


def _cells(df: pd.DataFrame, group_by: Sequence[str]) -> list[tuple[str, pd.DataFrame]]:
    keys = [k for k in group_by if k in df]
    if not keys:
        return [("all runs", df)]
    return [
        (", ".join(str(v) for v in (name if isinstance(name, tuple) else (name,))), g)
        for name, g in df.groupby(keys, sort=False, dropna=False)
    ]


def _scatter_cell(
    ax: Any, runs: pd.DataFrame, best: pd.DataFrame, metric: str, colors: dict
) -> None:
    x_after = f"after/{metric}"
    for method, g in runs.groupby("unlearn.method"):
        ax.scatter(g[x_after], g[MEM_AFTER], s=12, alpha=0.25, color=colors[method], linewidths=0)
    for method, g in best.groupby("unlearn.method"):
        ax.scatter(
            g[x_after], g[MEM_AFTER], s=70, color=colors[method], edgecolors="black", label=method
        )
    base = runs.iloc[0]
    ax.scatter([base[f"before/{metric}"]], [base[MEM_BEFORE]], marker="*", s=220, color="gold",
               edgecolors="black", zorder=5, label="unedited")  # fmt: skip
    finite = runs[x_after].replace([np.inf, -np.inf], np.nan).dropna()
    if metric == "util/ppl" and len(finite) and finite.max() / max(finite.min(), 1e-9) > 20:
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())


def plot_mem_vs_utility(
    runs: pd.DataFrame,
    best: pd.DataFrame,
    out: str | Path,
    *,
    utility: str = "ppl",
    group_by: Sequence[str] = (),
    title: str = "",
    max_cells: int = 8,
) -> Path:
    """Memorization after the edit (y) against utility after the edit (x), per method and cell."""
    plt = pyplot()
    metric, label = UTILITY[utility]
    cells = _cells(runs, group_by)[:max_cells]
    ncols = min(4, len(cells))
    nrows = int(np.ceil(len(cells) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.6 * nrows), squeeze=False)
    colors = method_colors(list(runs["unlearn.method"].dropna().unique()))
    for ax, (name, cell) in zip(axes.flat, cells):
        cell_best = best.loc[best.index.intersection(cell.index)]
        _scatter_cell(ax, cell, cell_best, metric, colors)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(label)
        ax.set_ylabel("% memorized after edit")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(cells) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=8, frameon=False
    )
    fig.suptitle(title or f"memorization vs {label}")
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    return save_png(fig, out)


def plot_memorization_over_training(
    curves: pd.DataFrame,
    out: str | Path,
    *,
    x: str = "epoch",
    y: str = "mem/perc",
    hue: str | None = None,
    title: str = "memorization over training",
) -> Path:
    """Mean % memorized against training progress, one line per ``hue`` value (band: min–max)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    groups = curves.groupby(hue, sort=True) if hue else [("", curves)]
    for name, g in groups:
        stats = g.groupby(x)[y].agg(["mean", "min", "max"]).sort_index()
        ax.plot(
            stats.index, stats["mean"], marker="o", ms=3, label=f"{hue}={name}" if hue else None
        )
        ax.fill_between(stats.index, stats["min"], stats["max"], alpha=0.15)
    ax.set_xlabel(x)
    ax.set_ylabel("% memorized")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if hue:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, out)


def plot_cost(runs: pd.DataFrame, out: str | Path, *, title: str = "cost per method") -> Path:
    """Median seconds per method with min–max whiskers, log scale."""
    plt = pyplot()
    stats = runs.groupby("unlearn.method")["cost/seconds"].agg(["median", "min", "max"])
    stats = stats.dropna().sort_values("median")
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(stats) + 1.5))
    err = np.vstack([stats["median"] - stats["min"], stats["max"] - stats["median"]])
    colors = method_colors(list(stats.index))
    ax.barh(
        stats.index, stats["median"], xerr=err, color=[colors[m] for m in stats.index], capsize=3
    )
    ax.set_xscale("log")
    ax.set_xlabel("seconds per run (median, min-max)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return save_png(fig, out)


def save_png(fig: Any, out: str | Path) -> Path:
    plt = pyplot()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
