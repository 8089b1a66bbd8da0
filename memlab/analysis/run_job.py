"""Execute one run and record it: skip if done, time it, catch its failure, append its row.

This is the function every launcher runs for a sweep job (one Hydra job = one run). The reference
lost a whole Parsl task when one run crashed and re-ran finished runs unless every CSV column matched
(unlearning-methods.md §9.1, §13 item 21); here a failure becomes a ``failed`` row with its error and
the sweep goes on, and a run whose hash is already ``done`` returns immediately. Entry points
(``memlab.train`` etc.) can call :func:`execute_run` from their ``main()`` to record standalone runs
in the same store with the same hash.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from memlab.analysis import wandb_utils
from memlab.analysis.results_store import DONE, FAILED, ResultsStore, config_columns, run_hash
from memlab.analysis.tasks import get_task

log = logging.getLogger(__name__)
SKIPPED = "skipped"


def _error_text(err: BaseException) -> str:
    tail = "".join(traceback.format_exception(type(err), err, err.__traceback__)[-3:])
    return f"{type(err).__name__}: {err}\n{tail}"[:4000]


def _call(task: str, cfg: Any) -> tuple[dict[str, Any], str, str | None, float]:
    start = time.perf_counter()
    try:
        metrics = dict(get_task(task).resolve()(cfg) or {})
        status, error = DONE, None
    except Exception as err:  # a failing run is recorded, not raised: the sweep goes on
        log.exception("run failed: %s", err)
        metrics, status, error = {}, FAILED, _error_text(err)
    return metrics, status, error, time.perf_counter() - start


def build_row(
    task: str,
    cfg: Any,
    hash_: str,
    metrics: Mapping[str, Any],
    status: str,
    error: str | None,
    seconds: float,
) -> dict[str, Any]:
    """A results-store row: config columns, metrics, and the ``run/*`` bookkeeping."""
    row = {**config_columns(cfg), **metrics}
    row.setdefault("cost/seconds", seconds)
    row.update(
        {
            "run/hash": hash_,
            "run/task": task,
            "run/status": status,
            "run/error": error,
            "run/seconds": seconds,
            "run/time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    )
    return row


def execute_run(
    cfg: Any,
    *,
    task: str,
    results_dir: str,
    group: str = "default",
    wandb: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``task`` on ``cfg`` unless its hash is done; append and return its row."""
    store = ResultsStore(Path(results_dir))
    hash_ = run_hash(cfg)
    if store.is_done(hash_):
        log.info("run %s already done: skipped", hash_)
        return {"run/hash": hash_, "run/status": SKIPPED}
    metrics, status, error, seconds = _call(task, cfg)
    row = build_row(task, cfg, hash_, metrics, status, error, seconds)
    if status == DONE and store.is_done(hash_):
        log.info("run %s recorded its own row; not appending a second one", hash_)
    else:
        store.append(row)
    if wandb_utils.enabled(wandb):
        config = {k: v for k, v in row.items() if "/" not in k}
        metrics_out = {k: v for k, v in row.items() if "/" in k and k != "run/error"}
        wandb_utils.log_run(
            wandb, group=group, name=hash_, job_type=task, config=config, metrics=metrics_out
        )
    return row
