"""The reference's result CSV schemas (paper-results.md §7): import into memlab rows, export back.

Importing ``all_pythia_unlearning_runs.csv`` lets the selection code be tested on the published
runs; exporting memlab rows in the same columns lets a re-run be compared side by side.
Reference quirks handled here (unlearning-methods.md §13 item 23): each (model, step) block's base
row is the row with an empty ``unlearn_set_name`` (it carries the first run's method name, which is
ignored); on export a base row is labelled ``BASE_STATS``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from memlab.errors import ConfigError
from memlab.runs import config_hash
from memlab.unlearn.registry import REFERENCE_NAMES as REFERENCE_CLI_NAMES

# Reference CLI name (`--localization_method`) → memlab method name: one table, in the method registry.
METHOD_NAMES: dict[str, str] = dict(REFERENCE_CLI_NAMES)
REFERENCE_NAMES: dict[str, str] = {v: k for k, v in METHOD_NAMES.items()}

# Reference Pythia argument column → memlab config key.
PYTHIA_CONFIG: dict[str, str] = {
    "model_name": "model.name",
    "ratio": "unlearn.ratio",
    "batch_size": "unlearn.batch_size",
    "epochs": "unlearn.epochs",
    "lambda_l1": "unlearn.lambda_l1",
    "stop_loss": "unlearn.stop_loss",
    "lr": "unlearn.lr",
    "prompt_len": "eval.prompt_len",
    "ig_steps": "unlearn.ig_steps",
    "momentum": "unlearn.momentum",
    "weight_decay": "unlearn.weight_decay",
    "seed": "seed",
    "loss_weighting": "unlearn.loss_weighting",
}
PYTHIA_ALL_COLUMNS = [
    "model_name", "localization_method", "ratio", "batch_size", "epochs", "lambda_l1", "stop_loss",
    "lr", "prompt_len", "ig_steps", "momentum", "weight_decay", "step", "assess_mem", "seed",
    "loss_weighting", "model_path", "results_path", "perc", "perp", "total_time",
    "unlearn_set_name", "experiment", "perc_diff", "perp_diff",
]  # fmt: skip
PYTHIA_BEST_COLUMNS = [
    "perc", "perp", "localization_method", "ratio", "total_time", "model_name", "batch_size",
    "epochs", "lambda_l1", "stop_loss", "lr", "prompt_len", "ig_steps", "momentum", "weight_decay",
    "step", "assess_mem", "seed", "loss_weighting", "model_path", "results_path",
    "unlearn_set_name", "experiment", "perc_diff", "perp_diff", "score",
]  # fmt: skip
TINYMEM_COLUMNS = [
    "avg_acc", "avg_acc_perc_diff", "localization_method", "ratio", "data_name", "backdoor",
    "avg_perc_mem", "avg_perc_mem_perc_diff", "wiki_perp", "wiki_perp_perc_diff", "duplicate",
    "n_layers", "epoch", "seed", "num_3",
]  # fmt: skip
DATA_NAMES = {"wikitext": "wiki_fast"}  # memlab data name → reference data_name
CHECKPOINT_EPOCH_KEYS = ("ckpt_epoch", "train.epoch", "epoch")  # first present one is used


def read_csv(path: str | Path) -> pd.DataFrame:
    """A reference CSV without its leftover ``Unnamed: …`` index columns."""
    df = pd.read_csv(path)
    return df.loc[:, [c for c in df.columns if not str(c).startswith("Unnamed")]]


def revision_to_step(revision: Any) -> float:
    text = str(revision)
    return float(text.removeprefix("step")) if text.removeprefix("step").isdigit() else math.nan


def _pythia_block_rows(block: pd.DataFrame) -> list[dict[str, Any]]:
    base_rows = block[block["unlearn_set_name"].isna()]
    if base_rows.empty:
        raise ConfigError("reference block without a base row (empty unlearn_set_name)")
    base = base_rows.iloc[0]
    rows = []
    for _, ref in block[block["unlearn_set_name"] == "mem"].iterrows():
        row = {key: ref[col] for col, key in PYTHIA_CONFIG.items() if col in ref}
        row["unlearn.method"] = METHOD_NAMES.get(
            ref["localization_method"], ref["localization_method"]
        )
        row["model.revision"] = f"step{int(ref['step'])}"
        row.update(
            {
                "before/mem/perc": base["perc"],
                "after/mem/perc": ref["perc"],
                "before/util/ppl": base["perp"],
                "after/util/ppl": ref["perp"],
                "cost/seconds": ref["total_time"],
                "run/task": "unlearn",
                "run/status": "done",
            }
        )
        row["run/hash"] = config_hash({k: v for k, v in row.items() if "/" not in k})
        rows.append(row)
    return rows


def read_reference_pythia(path: str | Path) -> pd.DataFrame:
    """``all_pythia_unlearning_runs.csv`` as memlab rows (base values become ``before/*``)."""
    df = read_csv(path)
    rows: list[dict[str, Any]] = []
    for _, block in df.groupby(["model_name", "step"], sort=False):
        rows.extend(_pythia_block_rows(block))
    return pd.DataFrame(rows)


def _col(df: pd.DataFrame, *names: str) -> pd.Series:
    for name in names:
        if name in df:
            return df[name]
    return pd.Series([math.nan] * len(df), index=df.index, dtype=float)


def _rel(df: pd.DataFrame, metric: str) -> pd.Series:
    before = _col(df, f"before/{metric}")
    return (_col(df, f"after/{metric}") - before) / before


def _pythia_common(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    for col, key in PYTHIA_CONFIG.items():
        out[col] = _col(df, key)
    out["localization_method"] = _col(df, "unlearn.method").map(lambda m: REFERENCE_NAMES.get(m, m))
    out["step"] = _col(df, "model.revision").map(revision_to_step)
    out["assess_mem"] = 0
    out["model_path"] = _col(df, "ckpt", "model.name")
    out["results_path"] = _col(df, "paths.output_dir")
    out["perc"] = _col(df, "after/mem/perc")
    out["perp"] = _col(df, "after/util/ppl")
    out["total_time"] = _col(df, "cost/seconds")
    out["unlearn_set_name"] = "mem"
    out["experiment"] = 1
    return out


def _pythia_base(row: pd.Series) -> dict[str, Any]:
    return {
        "model_name": row["model_name"],
        "step": row["step"],
        "localization_method": "BASE_STATS",
        "perc": row["_base_perc"],
        "perp": row["_base_perp"],
        "perc_diff": 0.0,
        "perp_diff": 0.0,
    }


def _with_bases(runs: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Insert one base row in front of every (model, step) block."""
    parts = []
    for _, block in runs.groupby(["model_name", "step"], sort=False, dropna=False):
        parts.append(pd.DataFrame([_pythia_base(block.iloc[0])]))
        parts.append(block)
    merged = pd.concat(parts, ignore_index=True) if parts else runs
    return merged.reindex(columns=columns)


def to_pythia_all(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in ``all_pythia_unlearning_runs.csv`` columns (diffs in percent, ratio a fraction)."""
    out = _pythia_common(df)
    out["perc_diff"] = 100 * _rel(df, "mem/perc")
    out["perp_diff"] = 100 * _rel(df, "util/ppl")
    out["_base_perc"], out["_base_perp"] = _col(df, "before/mem/perc"), _col(df, "before/util/ppl")
    return _with_bases(out, PYTHIA_ALL_COLUMNS)


def to_pythia_best(df: pd.DataFrame) -> pd.DataFrame:
    """Selected rows in ``best_pythia_unlearning_runs.csv`` columns (ratio ×100, diffs fractions)."""
    out = _pythia_common(df)
    out["ratio"] = out["ratio"] * 100
    out["perc_diff"] = _rel(df, "mem/perc")
    out["perp_diff"] = _rel(df, "util/ppl")
    out["score"] = _col(df, "score")
    out["_base_perc"], out["_base_perp"] = _col(df, "before/mem/perc"), _col(df, "before/util/ppl")
    return _with_bases(out, PYTHIA_BEST_COLUMNS)


def to_tinymem(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in ``figs/csv/{math,lang}_{noise,bd}_localization.csv`` columns (paper-results.md §7.1)."""
    out = pd.DataFrame(index=df.index)
    out["avg_acc"] = _col(df, "after/util/acc_mean")
    out["avg_acc_perc_diff"] = 100 * _rel(df, "util/acc_mean")
    out["localization_method"] = _col(df, "unlearn.method").map(lambda m: REFERENCE_NAMES.get(m, m))
    out["ratio"] = _col(df, "unlearn.ratio") * 100
    out["data_name"] = _col(df, "data.name").map(lambda n: DATA_NAMES.get(n, n))
    out["backdoor"] = (_col(df, "artifact.kind") == "backdoor").astype(float)
    out["avg_perc_mem"] = _col(df, "after/mem/perc")
    out["avg_perc_mem_perc_diff"] = 100 * _rel(df, "mem/perc")
    out["wiki_perp"] = _col(df, "after/util/ppl")
    out["wiki_perp_perc_diff"] = 100 * _rel(df, "util/ppl")
    out["duplicate"] = _col(df, "artifact.duplicate").astype(float)
    out["n_layers"] = _col(df, "model.n_layer")
    out["epoch"] = _col(df, *CHECKPOINT_EPOCH_KEYS)
    out["seed"] = _col(df, "seed")
    out["num_3"] = _col(df, "data.num_extra")
    return out[TINYMEM_COLUMNS]


EXPORTERS = {"pythia_all": to_pythia_all, "pythia_best": to_pythia_best, "tinymem": to_tinymem}


def to_reference(df: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Map memlab rows (unlearning runs only) to one reference schema: see :data:`EXPORTERS`."""
    if kind not in EXPORTERS:
        raise ConfigError(f"unknown reference CSV kind '{kind}'; known: {sorted(EXPORTERS)}")
    if "run/task" in df:
        df = df[df["run/task"] == "unlearn"]
    if "run/status" in df:
        df = df[df["run/status"] == "done"]
    return EXPORTERS[kind](df.reset_index(drop=True))


_KEY = ["model_name", "step", "localization_method"]
_RUN_FIELDS = ["ratio", "epochs", "loss_weighting", "perc", "perp", "total_time"]


def _run_set(block: pd.DataFrame) -> frozenset[tuple[float, ...]]:
    return frozenset(tuple(round(float(v), 6) for v in row) for row in block[_RUN_FIELDS].values)


def _sets(df: pd.DataFrame) -> dict[tuple[Any, ...], frozenset[tuple[float, ...]]]:
    df = df[df["localization_method"] != "BASE_STATS"]
    return {key: _run_set(block) for key, block in df.groupby(_KEY, sort=False)}


def compare_best(ours: pd.DataFrame, theirs: pd.DataFrame) -> pd.DataFrame:
    """Per (model, step, method): whether both best-run tables list the same runs.

    Both inputs are in ``best_pythia_unlearning_runs.csv`` columns; runs are compared on ratio, epochs,
    loss_weighting, perc, perp and total_time (rounded to 6 decimals). Returns one row per key with
    ``match`` (bool) and both run sets.
    """
    a, b = _sets(ours), _sets(theirs)
    rows = []
    for key in list(b) + [k for k in a if k not in b]:
        mine, ref = a.get(key, frozenset()), b.get(key, frozenset())
        rows.append(
            {
                **dict(zip(_KEY, key)),
                "match": mine == ref,
                "ours": sorted(mine),
                "reference": sorted(ref),
            }
        )
    return pd.DataFrame(rows)


def differing(comparison: pd.DataFrame) -> Iterable[tuple[Any, ...]]:
    """Keys (model, step, method) whose selected runs differ."""
    bad = comparison[~comparison["match"]]
    return [tuple(r) for r in bad[_KEY].itertuples(index=False)]


def export_store(store: Any, path: str | Path, kind: str = "pythia_all") -> Path:
    """Write a results store's unlearning rows in a reference CSV schema: ``pythia_all``
    (``all_pythia_unlearning_runs.csv`` columns, one base row per model × step), ``pythia_best``
    (best-run columns; pass selected rows through :func:`to_reference` to get best runs only) or
    ``tinymem`` (the per-checkpoint localization CSV columns)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    to_reference(store.load(), kind).to_csv(out)
    return out
