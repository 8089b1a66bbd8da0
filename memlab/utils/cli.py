"""Shared plumbing of the thin ``@hydra.main`` entry points: one-line errors, run directories,
summaries and the results-store row."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from memlab.registry import ConfigError

log = logging.getLogger(__name__)
MALLOC_TUNING = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"


def report_config_errors(fn: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Run ``fn``; a :class:`ConfigError` (or a missing file) ends the program with one clear line."""

    def wrapper(cfg: DictConfig) -> Any:
        try:
            return fn(cfg)
        except (ConfigError, FileNotFoundError) as err:
            print(f"memlab: error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def output_dir(cfg: DictConfig) -> Path:
    """The run directory: ``paths.output_dir`` (the Hydra run dir under ``@hydra.main``)."""
    try:
        path = Path(cfg.paths.output_dir)
    except Exception:  # outside Hydra the ${hydra:} interpolation cannot resolve
        from hydra.core.hydra_config import HydraConfig

        path = Path(HydraConfig.get().runtime.output_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_hash(cfg: DictConfig) -> str:
    """The run's identity in the results store (one definition: ``results_store.run_hash``)."""
    from memlab.analysis.results_store import run_hash as store_hash

    return store_hash(cfg)


def flat_config(cfg: DictConfig) -> dict[str, Any]:
    """Config keys flattened with dots (``unlearn.ratio``), as in results-store rows."""
    from memlab.analysis.results_store import config_columns

    return config_columns(cfg)


def write_summary(cfg: DictConfig, metrics: dict[str, Any], out: Path) -> Path:
    """``summary.json`` (final metrics + run hash) and ``config.yaml`` (resolved config) in ``out``."""
    path = out / "summary.json"
    payload = {"run/hash": run_hash(cfg), "run/task": cfg.task_name, **metrics}
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=float))
    try:
        (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    except Exception:  # an unresolvable interpolation must not lose the summary
        (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    return path


def record_result(
    cfg: DictConfig, metrics: dict[str, Any], status: str = "done", error: str = ""
) -> None:
    """Append one row (config keys + metrics + status) to the results store, when enabled."""
    if not cfg.get("results", True):
        return
    try:
        from memlab.analysis.results_store import ResultsStore
    except ImportError:  # pragma: no cover - the store is optional for bare runs
        return
    row = {
        **flat_config(cfg),
        **metrics,
        "run/hash": run_hash(cfg),
        "run/task": cfg.task_name,
        "run/status": status,
        "run/error": error,
        "run/time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    ResultsStore(Path(cfg.paths.results_dir) / "results.jsonl").append(row)


def tune_malloc() -> None:
    """Re-exec hint: glibc malloc tuning made CPU training 1.3–1.65× faster here (bench/train_step.py).
    It only takes effect at process start, so the Makefile and README set GLIBC_TUNABLES."""
    if "GLIBC_TUNABLES" not in os.environ:
        log.debug(
            "GLIBC_TUNABLES not set; export GLIBC_TUNABLES=%s for faster CPU runs", MALLOC_TUNING
        )
