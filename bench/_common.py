"""Shared helpers of the benchmark scripts: compose configs, train a checkpoint, time calls."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import DictConfig, open_dict  # noqa: E402


def compose_cfg(name: str, overrides: list[str], workdir: Path) -> DictConfig:
    """A composed config whose outputs go to ``workdir`` (and the shared data cache)."""
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(name, overrides=overrides)
    with open_dict(cfg):
        cfg.paths.root_dir = str(ROOT)
        cfg.paths.output_dir = str(workdir)
        cfg.paths.cache_dir = str(ROOT / "outputs" / "cache")
    return cfg


def newest(pattern: str) -> Path | None:
    """The newest file under outputs/ matching ``pattern`` (e.g. the demo's last.ckpt)."""
    found = sorted((ROOT / "outputs").glob(pattern), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    """Median wall-clock seconds of ``repeat`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result
