"""Composing configs in tests (compose API) with every output path inside a temporary folder."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from memlab.runs import CONF_DIR as CONF_PATH

CONF_DIR = str(CONF_PATH)
ROOT = Path(__file__).resolve().parents[2]


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
