"""W&B logging, offline only (WANDB_MODE=offline, never the network): run files hold the summary."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

pytest.importorskip("wandb")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "reference-results"


def _summaries(root: Path, key: str, timeout: float = 20.0) -> list[dict]:
    """Summaries of the offline runs under ``root`` once each has ``key`` (the log is written by
    W&B's background service, which may still be flushing right after ``finish()``)."""
    from memlab.sweeps.wandb_runs import read_offline_summary

    deadline = time.monotonic() + timeout
    while True:
        found = [read_offline_summary(d) for d in sorted(root.glob("wandb/offline-run-*"))]
        if (found and all(key in s for s in found)) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_sweep_runs_write_offline_summaries(tmp_path, monkeypatch):
    from memlab.sweeps.launch import launch_plan
    from memlab.sweeps.plan import build_plan
    from tests.helpers.toy_task import SEARCH_PATH, TOY_TASK

    monkeypatch.setenv("MEMLAB_ROOT", str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    plan = build_plan({"name": "wb", "task": TOY_TASK, "axes": {"toy.x": [0.2, 0.4]}})
    launch_plan(
        plan,
        launcher_cfg=OmegaConf.create(
            {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}
        ),
        results_dir=tmp_path / "results",
        sweep_dir=tmp_path / "sweeps",
        wandb={"enabled": True, "mode": "offline", "dir": str(tmp_path), "project": "memlab-test"},
        search_path=SEARCH_PATH,
    )
    summaries = _summaries(tmp_path, "run/status")
    assert len(summaries) == 2
    for summary in summaries:
        for key in ("after/mem/perc", "before/util/ppl", "cost/seconds", "run/status", "run/hash"):
            assert key in summary
        assert summary["run/status"] == "done"


@pytest.mark.skipif(
    not SHARED.exists(),
    reason="the reference result CSVs (shared/data) are not beside this checkout",
)
def test_report_logs_best_run_table(tmp_path, monkeypatch):
    from hydra import compose, initialize_config_dir

    from memlab.report import build_report

    monkeypatch.setenv("WANDB_MODE", "offline")
    conf = str(Path(__file__).resolve().parents[1] / "conf")
    with initialize_config_dir(conf, version_base="1.3"):
        cfg = compose("report", overrides=[
            f"paths.root_dir={tmp_path}", f"out_dir={tmp_path}/report", "figures=false",
            f"reference_csv={SHARED / 'all_pythia_unlearning_runs.csv'}",
            "wandb.enabled=true", "wandb.mode=offline", f"wandb.dir={tmp_path}",
        ])  # fmt: skip
    build_report(cfg)
    (summary,) = _summaries(tmp_path, "report/n_best_rows")
    assert summary["report/best_runs"]["_type"] == "table-file"
    assert summary["report/n_best_rows"] == 80
