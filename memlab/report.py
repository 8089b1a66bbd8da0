"""``python -m memlab.report``: best run per (setting, method), tables, reference CSVs and figures.

Examples::

    python -m memlab.report                                   # the default results store
    python -m memlab.report results=outputs/results out_dir=outputs/report
    python -m memlab.report reference_csv=<path>/all_pythia_unlearning_runs.csv
    WANDB_MODE=offline python -m memlab.report wandb.enabled=true

Selection rules: :mod:`memlab.analysis.selection` (docs/analysis.md).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from memlab.analysis import plots, reference_csv, robustness, tables
from memlab.analysis.selection import (
    Setting,
    assign_settings,
    in_definitions,
    scoring_line,
    select_all,
    settings_from_config,
    unlearning_rows,
)
from memlab.errors import ConfigError
from memlab.runs import ResultsStore, entry_point
from memlab.sweeps import wandb_runs

log = logging.getLogger(__name__)
REFERENCE_KIND = {"pythia": "pythia_best", "math": "tinymem", "language": "tinymem"}


def load_rows(cfg: DictConfig) -> pd.DataFrame:
    """Rows to report on: an imported reference CSV, or the results store (which must hold rows)."""
    if cfg.get("reference_csv"):
        return reference_csv.read_reference_pythia(cfg.reference_csv)
    store = ResultsStore(Path(cfg.results))
    if not store.path.is_file():
        raise ConfigError(f"results={cfg.results}: no results store ({store.path.name}) there")
    rows = store.load()
    if rows.empty:
        raise ConfigError(f"results={cfg.results}: the results store {store.path} holds no rows")
    return rows


def unscorable_lines(scored: pd.DataFrame, placed: pd.Series, best: pd.DataFrame) -> list[str]:
    """Unlearning runs of a setting that no best-run table can rank: with nothing memorized
    before the edit, the relative change of memorization is undefined."""
    before = scored.get("before/mem/perc", pd.Series(dtype=float))
    left = scored[placed.notna() & ~scored.index.isin(best.index) & before.eq(0.0)]
    return [f"- run {r.get('run/hash')} ({r.get('unlearn.method')}, {placed[i]}): not ranked, "
            "nothing was memorized before the edit (before/mem/perc = 0)"
            for i, r in left.iterrows()]  # fmt: skip


def unplaced_lines(rows: pd.DataFrame, scored: pd.DataFrame, placed: pd.Series) -> list[str]:
    """The report's account of every row it does not score: failed runs, runs of other tasks,
    and unlearning runs that match no setting (with the values the settings look at)."""
    lines = []
    if "run/status" in rows:
        failed = rows[rows["run/status"] != "done"]
        lines += [f"- failed run {r['run/hash']} ({r.get('run/task')}): {r.get('run/error')}"
                  for r in failed.to_dict("records")]  # fmt: skip
    other = rows.drop(index=scored.index.union(failed.index if "run/status" in rows else []))
    if not other.empty and "run/task" in other:
        counts = other["run/task"].fillna("?").value_counts()
        lines += [
            f"- {n} {task} run(s): not unlearning runs, not scored" for task, n in counts.items()
        ]
    keys = [k for k in ("data.builder", "data.name", "model.name") if k in scored]
    for r in scored[placed.isna()].to_dict("records"):
        facts = ", ".join(f"{k}={r.get(k)}" for k in keys) or "no data/model columns"
        lines.append(f"- run {r.get('run/hash')}: matches no setting ({facts})")
    return ["## rows not in any best-run table", "", *lines, ""] if lines else []


def _write_setting(
    setting: Setting, runs: pd.DataFrame, best: pd.DataFrame, out: Path
) -> list[str]:
    crit = setting.criterion
    table = tables.best_run_table(best, crit.group_by, crit.utility, crit.definitions)
    best.to_csv(out / f"best_{setting.name}.csv", index=False)
    kind = REFERENCE_KIND.get(setting.name)
    if kind:
        exported = reference_csv.to_reference(in_definitions(best, crit.definitions), kind)
        exported.to_csv(out / f"best_{setting.name}.reference.csv")
    title = f"## {setting.name}: best run per method ({len(best)} rows of {len(runs)} runs)"
    return [title, "", scoring_line(setting, runs), "", tables.markdown(table), ""]


def _figures(
    setting: Setting, runs: pd.DataFrame, best: pd.DataFrame, cfg: DictConfig
) -> dict[str, Path]:
    out = Path(cfg.out_dir)
    crit = setting.criterion
    return {
        f"{setting.name}/mem_vs_{crit.utility}": plots.plot_mem_vs_utility(
            runs,
            best,
            out / f"{setting.name}_mem_vs_{crit.utility}.png",
            utility=crit.utility,
            group_by=crit.group_by,
            title=f"{setting.name}: memorization vs {crit.utility}",
            max_cells=int(cfg.max_cells),
        ),  # fmt: skip
        f"{setting.name}/cost": plots.plot_cost(
            runs, out / f"{setting.name}_cost.png", title=f"{setting.name}: cost per method"
        ),
    }


def _training_figure(cfg: DictConfig) -> dict[str, Path]:
    if not cfg.get("training_csv"):
        return {}
    curves = reference_csv.read_csv(cfg.training_csv).rename(columns={"perc_mem": "mem/perc"})
    hue = "n_layer" if "n_layer" in curves else None
    path = plots.plot_memorization_over_training(
        curves, Path(cfg.out_dir) / "mem_over_training.png", hue=hue
    )
    return {"training/mem_over_training": path}


def _robustness(rows: pd.DataFrame, cfg: DictConfig) -> tuple[list[str], dict[str, Path]]:
    """The audits' robustness table and one relearning figure per audited checkpoint."""
    audits = robustness.audit_rows(rows)
    if audits.empty:
        return [], {}
    table = robustness.robustness_table(rows)
    lines = ["## robustness of each mitigation (memlab.audit)", "", tables.markdown(table), ""]
    figures: dict[str, Path] = {}
    if cfg.figures:
        checkpoints = dict.fromkeys(robustness.checkpoint_of(r) for _, r in audits.iterrows())
        for i, ckpt in enumerate(checkpoints):
            out = Path(cfg.out_dir) / f"relearning_{i}.png"
            figures[f"audit/relearning_{i}"] = robustness.plot_relearning(rows, out, ckpt=ckpt)
    return lines, figures


def build_report(cfg: DictConfig) -> dict[str, Any]:
    """Select, tabulate, export and plot; returns the best rows and the written files."""
    every_row = load_rows(cfg)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = unlearning_rows(every_row)
    settings = settings_from_config(OmegaConf.to_container(cfg.settings, resolve=True))  # type: ignore[arg-type]
    best = select_all(rows, settings)
    setting_of = assign_settings(rows, settings)
    lines, figures = (
        ["# memlab report", "", f"{len(every_row)} rows, {len(rows)} unlearning runs.", ""],
        {},
    )
    for setting in settings:
        sel = best[best["setting"] == setting.name] if "setting" in best else best.iloc[0:0]
        if sel.empty:
            continue
        runs = rows[setting_of == setting.name]
        lines += _write_setting(setting, runs, sel, out)
        if cfg.figures:
            figures.update(_figures(setting, runs, sel, cfg))
    unranked = unscorable_lines(rows, setting_of, best)
    audit_lines, audit_figures = _robustness(every_row, cfg)
    lines += audit_lines
    figures.update(audit_figures)
    not_audits = every_row.drop(index=robustness.audit_rows(every_row).index)
    left_over = unplaced_lines(not_audits, rows, setting_of)
    if unranked and not left_over:
        left_over = ["## rows not in any best-run table", ""]
    lines += left_over[:2] + unranked + left_over[2:]
    if cfg.figures:
        figures.update(_training_figure(cfg))
    (out / "best_runs.md").write_text("\n".join(lines))
    best.to_csv(out / "best_runs.csv", index=False)
    if wandb_runs.enabled(cfg.wandb):
        _log_wandb(cfg, best, figures)
    return {"best": best, "figures": figures, "markdown": out / "best_runs.md"}


def _log_wandb(cfg: DictConfig, best: pd.DataFrame, figures: dict[str, Path]) -> None:
    opts = OmegaConf.to_container(cfg.wandb, resolve=True)
    run = wandb_runs.start_run(opts, group=str(opts.get("group", "report")), name="report",  # type: ignore[union-attr]
                                job_type="report", config={"results": str(cfg.results)})  # fmt: skip
    try:
        wandb_runs.log_table(run, "report/best_runs", best)
        wandb_runs.log_images(run, {k: str(v) for k, v in figures.items()})
        run.summary["report/n_best_rows"] = len(best)
    finally:
        run.finish()


def run(cfg: DictConfig) -> dict[str, Any]:
    """Build the report and print it with the figures' paths."""
    result = build_report(cfg)
    print(Path(result["markdown"]).read_text())
    for name, path in result["figures"].items():
        print(f"figure {name}: {path}")
    return result


main = entry_point("report", run)


if __name__ == "__main__":
    main()
