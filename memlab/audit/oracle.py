"""The retrain oracle: the checkpoint's training run again, without the forget rows.

Exact unlearning's gold standard — a model that never saw the forget rows — against which the
audits of a mitigated model are read (its MIA AUC is the "no membership signal" level, its
relearning curve the speed at which unseen rows are learned from a tenth of them). The training
configuration is the checkpoint's own (data, model, optimizer, regularizer, trainer, seed) with
every copy of the forget rows (all duplicates) removed from the training set; loggers and
checkpoint callbacks are off. The trained oracle is cached under ``paths.cache_dir/audit_oracle``
by a hash of that configuration and the forget rows, so it is trained once per checkpoint.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from memlab.data.datamodule import LMDataModule
from memlab.data.lm_data import LMData
from memlab.models.build import build_model, load_trained_model
from memlab.regularizers.build import build_regularizers
from memlab.runs import config_hash
from memlab.training.setup import make_fit

log = logging.getLogger(__name__)

NOT_TRAINING = ("paths", "hydra", "logger", "callbacks", "results", "task_name")


def without_rows(data: LMData, forget: torch.Tensor) -> LMData:
    """``data`` whose training set lacks every row that is a copy of artifact rows ``forget``."""
    keep = ~torch.isin(data.train_twin, forget)
    return replace(
        data,
        train=data.train[keep],
        train_dist=data.train_dist[keep],
        train_twin=data.train_twin[keep],
        train_group=data.train_group[keep],
    )


def oracle_config(run_cfg: DictConfig, workdir: Path) -> DictConfig:
    """The training config with outputs in ``workdir``, no loggers and no checkpointing."""
    cfg = OmegaConf.create(OmegaConf.to_container(run_cfg, resolve=True))
    with open_dict(cfg):
        cfg.callbacks = None
        cfg.logger = None
        cfg.paths.output_dir = str(workdir)
        cfg.trainer.enable_checkpointing = False
        cfg.trainer.default_root_dir = str(workdir)
        cfg.ckpt_path = None
    return cfg


def oracle_path(run_cfg: DictConfig, forget: torch.Tensor, cache_dir: str | Path) -> Path:
    """Where the oracle of (training config, forget rows) is cached."""
    training = {
        k: v
        for k, v in OmegaConf.to_container(run_cfg, resolve=True).items()
        if k not in NOT_TRAINING
    }
    key = config_hash({"training": training, "forget": forget.tolist()})
    return Path(cache_dir) / "audit_oracle" / f"{key}.ckpt"


def train_oracle(run_cfg: DictConfig, data: LMData, forget: torch.Tensor, path: Path) -> None:
    """Train the oracle and save it as a memlab checkpoint at ``path``."""
    reduced = without_rows(data, forget)
    log.info("retrain oracle: %d of %d training rows", len(reduced.train), len(data.train))
    with tempfile.TemporaryDirectory() as workdir:
        cfg = oracle_config(run_cfg, Path(workdir))
        pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
        model = build_model(cfg.model, reduced)
        fit = make_fit(cfg, reduced, model, build_regularizers(cfg.regularizer, cfg.seed))
        fit.trainer.fit(fit.module, datamodule=LMDataModule(cfg, reduced))
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {f"model.{k}": v.cpu() for k, v in model.state_dict().items()}
    config = OmegaConf.to_container(run_cfg, resolve=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"state_dict": state, "memlab_config": config}, tmp)
    tmp.replace(path)


def retrain_oracle(
    run_cfg: DictConfig, data: LMData, forget: torch.Tensor, cache_dir: str | Path
) -> nn.Module:
    """The model trained like ``run_cfg`` without artifact rows ``forget`` (cached)."""
    path = oracle_path(run_cfg, forget, cache_dir)
    if path.is_file():
        log.info("retrain oracle from the cache: %s", path)
    else:
        train_oracle(run_cfg, data, forget, path)
    model, _ = load_trained_model(path, data)
    return model
