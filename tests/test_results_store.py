"""Results store: append/load, skip-if-done identity, torn lines, concurrent appends, CSV export."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from memlab.analysis.reference_csv import export_store
from memlab.runs import ResultsStore, config_columns, flatten, run_hash

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "reference-results"


def _row(h: str, status: str = "done", **extra) -> dict:
    return {"run/hash": h, "run/status": status, "run/task": "toy", **extra}


def test_append_load_and_is_done(tmp_path):
    store = ResultsStore(tmp_path)
    assert store.path == tmp_path / "results.jsonl"
    store.append(_row("a", "failed", **{"run/error": "boom"}))
    store.append(_row("b", **{"mem/perc": 12.5, "unlearn.ratio": 0.01}))
    assert store.is_done("b") and not store.is_done("a")
    store.append(_row("a", **{"mem/perc": 3.0}))  # the failed run retried and finished
    df = store.load()
    assert len(df) == 2 and set(df["run/status"]) == {"done"}
    assert len(store.load(latest=False)) == 3


def test_torn_last_line_is_skipped(tmp_path):
    store = ResultsStore(tmp_path / "r.jsonl")
    store.append(_row("a"))
    with open(store.path, "a") as fh:
        fh.write('{"run/hash": "b", "run/sta')  # a job killed mid-write
    assert [r["run/hash"] for r in store.rows()] == ["a"]


def _writer(path: str, worker: int, n: int) -> None:
    store = ResultsStore(path)
    for i in range(n):
        store.append(_row(f"{worker}-{i}", payload="x" * 5000))  # > PIPE_BUF: needs the lock


def test_concurrent_appends_keep_every_row_whole(tmp_path):
    path = str(tmp_path / "results.jsonl")
    procs = [mp.get_context("fork").Process(target=_writer, args=(path, w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    rows = ResultsStore(path).rows()
    assert len(rows) == 160 and len({r["run/hash"] for r in rows}) == 160


def test_run_hash_ignores_paths_and_matches_entry_points():
    cfg = OmegaConf.create({"task_name": "t", "seed": 1, "paths": {"output_dir": "${hydra:runtime.output_dir}"},
                            "hydra": {"x": 1}, "unlearn": {"ratio": 0.01}})  # fmt: skip
    other = OmegaConf.merge(cfg, {"paths": {"output_dir": "/elsewhere"}})
    assert run_hash(cfg) == run_hash(other)
    assert run_hash(cfg) != run_hash(OmegaConf.merge(cfg, {"unlearn": {"ratio": 0.05}}))


def test_flatten_and_config_columns():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {
        "a.b": 1,
        "a.c": "[1, 2]",
        "d": None,
    }
    cols = config_columns(OmegaConf.create({"x": "${y}", "y": 2, "hydra": {"z": 1}}))
    assert cols == {"x": 2, "y": 2}


@pytest.mark.skipif(
    not SHARED.exists(),
    reason="the reference result CSVs (shared/data) are not beside this checkout",
)
def test_export_reference_pythia_columns(tmp_path):
    import pandas as pd

    from memlab.analysis import reference_csv

    store = ResultsStore(tmp_path)
    rows = reference_csv.read_reference_pythia(SHARED / "all_pythia_unlearning_runs.csv")
    for row in rows.head(151 * 2).to_dict("records"):
        store.append(row)
    out = export_store(store, tmp_path / "all.csv", kind="pythia_all")
    exported = pd.read_csv(out, index_col=0)
    ref = reference_csv.read_csv(SHARED / "all_pythia_unlearning_runs.csv")
    assert list(exported.columns) == list(ref.columns)
    assert (
        len(exported) == 2 * 152
    )  # one base row + 151 runs per (model, step), as in the reference
    base = exported[exported["localization_method"] == "BASE_STATS"]
    assert base["perc"].tolist() == pytest.approx(
        ref[ref["unlearn_set_name"].isna()]["perc"].head(2).tolist()
    )
    runs = exported[exported["unlearn_set_name"] == "mem"]
    merged = runs.merge(
        ref, on=["model_name", "step", "perc", "perp", "total_time"], suffixes=("", "_ref")
    )
    assert len(merged) == len(runs)
    assert merged["perc_diff"].to_numpy() == pytest.approx(
        merged["perc_diff_ref"].to_numpy(), abs=1e-6
    )
