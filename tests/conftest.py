"""Shared fixtures. Heavy imports happen once per test session; one small TinyMem model that
memorizes is trained once (``tiny_run``) and reused by every test that needs a trained model."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import pytest  # noqa: E402
import torch  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from tests.helpers.configs import TINY_OVERRIDES, compose_config  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@dataclass
class TrainedRun:
    cfg: DictConfig
    ckpt: Path
    metrics: dict
    out: Path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> TrainedRun:
    """One small TinyMem model trained until it memorizes (noise artifact)."""
    from memlab.train import run

    tmp = tmp_path_factory.mktemp("tiny_run")
    cfg = compose_config("train", TINY_OVERRIDES, tmp)
    metrics = run(cfg)
    return TrainedRun(cfg, tmp / "run" / "checkpoints" / "last.ckpt", metrics, tmp / "run")
