"""Weights & Biases helpers: one W&B run per sweep run, grouped per sweep; tables for the report.

Metric names are already ``/``-grouped (``mem/perc``, ``util/acc/7``, ``before/…``/``after/…``), so W&B
shows one panel section per prefix. Each sweep run becomes a W&B run in the sweep's group with its
flattened config, its metrics as summary values, and ``job_type`` = the task. The report logs the
best-run table as a ``wandb.Table``. ``mode: offline`` (or ``WANDB_MODE=offline``) never touches the
network; the run files land under ``<dir>/wandb/offline-run-*``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

WANDB_DEFAULTS: dict[str, Any] = {
    "enabled": False,
    "project": "memlab",
    "entity": None,
    "mode": None,
    "dir": "outputs",
}


def _settings(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    return {**WANDB_DEFAULTS, **dict(cfg or {})}


def enabled(cfg: Mapping[str, Any] | None) -> bool:
    return bool(_settings(cfg)["enabled"])


def start_run(
    cfg: Mapping[str, Any] | None,
    *,
    group: str,
    name: str,
    job_type: str,
    config: Mapping[str, Any],
) -> Any:
    """Start a W&B run (lazy import: wandb is only loaded when logging is enabled)."""
    import wandb

    opts = _settings(cfg)
    os.makedirs(opts["dir"], exist_ok=True)
    return wandb.init(
        project=opts["project"],
        entity=opts["entity"],
        mode=opts["mode"] or os.environ.get("WANDB_MODE", "online"),
        dir=opts["dir"],
        group=group,
        name=name,
        job_type=job_type,
        config=dict(config),
        reinit="finish_previous",
    )


def _loggable(value: Any) -> bool:
    if isinstance(value, bool | int | str):
        return True
    return isinstance(value, float) and not math.isnan(value)


def set_summary(run: Any, metrics: Mapping[str, Any]) -> None:
    """Put final metrics into the run summary (what W&B tables and run comparisons show)."""
    for key, value in metrics.items():
        if _loggable(value):
            run.summary[key] = value


def log_table(run: Any, key: str, df: Any) -> None:
    """Log a pandas DataFrame as a ``wandb.Table`` under ``key``."""
    import wandb

    clean = df.astype(object).where(df.notna(), None)
    run.log({key: wandb.Table(columns=[str(c) for c in clean.columns], data=clean.values.tolist())})


def log_images(run: Any, paths: Mapping[str, str]) -> None:
    """Log figure files (PNG) as ``wandb.Image`` under their keys."""
    import wandb

    run.log({key: wandb.Image(path) for key, path in paths.items()})


def log_run(
    cfg: Mapping[str, Any] | None,
    *,
    group: str,
    name: str,
    job_type: str,
    config: Mapping[str, Any],
    metrics: Mapping[str, Any],
) -> None:
    """One finished sweep run → one W&B run with its config and summary metrics."""
    run = start_run(cfg, group=group, name=name, job_type=job_type, config=config)
    try:
        set_summary(run, metrics)
    finally:
        run.finish()


_BLOCK = 32768
_HEADER = 7  # ":W&B" + magic (2 bytes) + version (1 byte)


def _records(data: bytes) -> list[bytes]:
    """Payloads of a W&B transaction log (LevelDB log format: 32 KiB blocks, 7-byte chunk headers)."""
    out, pos, partial = [], _HEADER, b""
    while pos + 7 <= len(data):
        left = _BLOCK - (pos % _BLOCK)
        if left < 7:  # block trailer padding
            pos += left
            continue
        length = int.from_bytes(data[pos + 4 : pos + 6], "little")
        kind, chunk = data[pos + 6], data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        partial = chunk if kind in (1, 2) else partial + chunk
        if kind in (1, 4):
            out.append(partial)
            partial = b""
    return out


def read_offline_summary(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The summary of an offline W&B run directory (``offline-run-*``), without syncing it.

    Reads ``files/wandb-summary.json`` when present, else replays the summary records of the
    run's ``.wandb`` transaction log.
    """
    import json
    from pathlib import Path

    run_dir = Path(run_dir)
    summary_file = run_dir / "files" / "wandb-summary.json"
    if summary_file.exists():
        return json.loads(summary_file.read_text())
    from wandb.proto import wandb_internal_pb2

    summary: dict[str, Any] = {}
    for log_file in run_dir.glob("*.wandb"):
        for payload in _records(log_file.read_bytes()):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(payload)
            if record.WhichOneof("record_type") == "summary":
                for item in record.summary.update:
                    _assign(
                        summary, [item.key] if item.key else list(item.nested_key), item.value_json
                    )
    return summary


def _assign(tree: dict[str, Any], path: list[str], value_json: str) -> None:
    import json

    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = json.loads(value_json)
