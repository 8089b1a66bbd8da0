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
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import DictConfig, open_dict  # noqa: E402

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

# A tiny increment setting that memorizes in ~25 s on 2 CPU cores (about 20 evaluable noised rows).
TINY_OVERRIDES = [
    "data.num_main=400",
    "data.num_extra=100",
    "data.num_test=20",
    "data.length=6",
    "data.max_ctx=40",
    "artifact.num_noise=100",
    "model.n_layer=2",
    "trainer.max_epochs=40",
    "train.eval_every=20",
    "train.batch_size=64",
    "eval.prompt_len=10",
    "eval.k=10",
    "~callbacks.progress_bar",
    "results=false",
]


def compose_config(config_name: str, overrides: list[str], tmp: Path) -> DictConfig:
    """Compose a primary config (compose API) with every path pointed into ``tmp``."""
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose(config_name, overrides=overrides)
    with open_dict(cfg):
        cfg.paths.root_dir = str(tmp)
        cfg.paths.output_dir = str(tmp / "run")
        cfg.paths.cache_dir = str(tmp / "cache")
        cfg.paths.results_dir = str(tmp / "results")
    return cfg


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
