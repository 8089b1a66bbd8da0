"""Every config composes with the compose API, and its instantiable parts instantiate."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.helpers.configs import CONF_DIR, compose_config

CONF = Path(CONF_DIR)
PRIMARY = sorted(p.stem for p in CONF.glob("*.yaml"))
TRAIN_GROUPS = [
    "data",
    "artifact",
    "model",
    "optim",
    "trainer",
    "logger",
    "callbacks",
    "eval",
    "regularizer",
    "debug",
]
DATA_FOR_MODEL = {"pythia_memorized": None}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_every_primary_config_composes(tmp_path):
    assert {"train", "unlearn", "finetune", "sweep", "report", "mine"} <= set(PRIMARY)
    for name in PRIMARY:
        cfg = compose_config(name, [], tmp_path)
        assert OmegaConf.to_container(cfg, resolve=False)


@pytest.mark.parametrize("group", TRAIN_GROUPS)
def test_every_group_option_composes_into_train(tmp_path, group):
    for option in options(group):
        cfg = compose_config("train", [f"{group}={option}"], tmp_path)
        plain = OmegaConf.to_container(cfg, resolve=True)
        assert group == "debug" or plain[group] is not None


def test_every_unlearn_method_and_experiment_composes(tmp_path):
    for method in options("unlearn"):
        cfg = compose_config("unlearn", [f"unlearn={method}"], tmp_path)
        assert cfg.unlearn.name == method
        assert 0.0 <= cfg.unlearn.ratio <= 1.0
    for exp in ("demo", "demo_language", "compare_small"):
        cfg = compose_config("train", [f"experiment={exp}"], tmp_path)
        OmegaConf.to_container(cfg, resolve=True)


def test_loggers_and_callbacks_instantiate(tmp_path):
    from memlab.training.setup import instantiate_group

    for logger in options("logger"):
        cfg = compose_config("train", [f"logger={logger}"], tmp_path)
        made = instantiate_group(cfg.logger)
        assert len(made) == len([n for n in cfg.logger.values() if n and "_target_" in n])
    cfg = compose_config("train", [], tmp_path)
    names = {type(cb).__name__ for cb in instantiate_group(cfg.callbacks)}
    assert names == {"RunCheckpoint", "EpochProgressBar"}


def test_cpu_trainer_instantiates(tmp_path):
    import pytorch_lightning as pl

    cfg = compose_config("train", ["trainer.max_epochs=1"], tmp_path)
    trainer = pl.Trainer(**cfg.trainer, logger=False, enable_checkpointing=False)
    assert trainer.max_epochs == 1
    assert instantiate({"_target_": "builtins.dict", "a": 1}) == {"a": 1}


def test_every_yaml_key_has_a_comment():
    """Docs for every config group: each key line carries a comment (or a comment block above)."""
    missing = []
    for path in CONF.rglob("*.yaml"):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            stripped = line.strip()
            if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
                continue
            if "#" in line or (i and lines[i - 1].strip().startswith("#")):
                continue
            if stripped.endswith(":") or stripped.startswith(("_target_:", "reason:")):
                continue  # section headers, import paths and filter reasons document themselves
            if stripped.endswith(",") and "#" in lines[i + 1]:  # a flow list commented below
                continue
            missing.append(f"{path.relative_to(CONF)}:{i + 1}: {stripped}")
    assert not missing, "\n".join(missing[:30])
