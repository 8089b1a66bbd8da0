"""Execute one run of a sweep: skip it if done, run it, record its failure.

This is the function every launcher runs for a sweep job (one Hydra job = one run). A run that
finishes records its own row (:func:`memlab.runs.finish`); a run that raises becomes a ``failed`` row
whose ``run/error`` is the real error's last line, and the sweep goes on. A run whose hash is already
``done`` returns at once, so re-running a sweep resumes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from memlab.runs import DONE, FAILED, ResultsStore, error_line, results_row, run_hash
from memlab.schema import validate
from memlab.sweeps import wandb_runs
from memlab.sweeps.tasks import get_task

log = logging.getLogger(__name__)
SKIPPED = "skipped"


def execute_run(
    cfg: Any,
    *,
    task: str,
    results_dir: str,
    group: str = "default",
    wandb: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``task`` on ``cfg`` unless its hash is done; returns its row (a failed one is appended)."""
    store = ResultsStore(Path(results_dir))
    hash_ = run_hash(cfg)
    if store.is_done(hash_):
        log.info("run %s already done: skipped", hash_)
        return {"run/hash": hash_, "run/status": SKIPPED}
    start = time.perf_counter()
    try:
        validate(cfg)
        metrics = dict(get_task(task).resolve()(cfg) or {})
        row = results_row(cfg, metrics, status=DONE, seconds=time.perf_counter() - start)
    except (
        Exception,
        SystemExit,
    ) as err:  # a failing run is recorded, not raised: the sweep goes on
        log.exception("run %s failed", hash_)
        message = error_line(err)
        row = results_row(
            cfg, {}, status=FAILED, error=message, seconds=time.perf_counter() - start
        )
        store.append(row)
    if wandb_runs.enabled(wandb):
        config = {k: v for k, v in row.items() if "/" not in k}
        metrics_out = {k: v for k, v in row.items() if "/" in k and k != "run/error"}
        wandb_runs.log_run(
            wandb, group=group, name=hash_, job_type=task, config=config, metrics=metrics_out
        )
    return row
