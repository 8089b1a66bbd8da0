"""Assemble a Lightning fit from a config: module, callbacks, loggers, trainer.

Shared by ``memlab.train`` and ``memlab.finetune`` so both produce the same outputs. Every logger
receives the run's resolved config, flattened to the results store's column names
(``model.n_layer``, ``optim.lr``, ...), once per run.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from memlab.data.bundle import LMData
from memlab.metrics.evaluate import check_windows
from memlab.runs import config_columns, trainer_kwargs
from memlab.training.epochs import EpochNumbering
from memlab.training.eval_callback import MemorizationEval
from memlab.training.lm_module import LMModule


@dataclass
class Fit:
    trainer: pl.Trainer
    module: LMModule
    evaluator: MemorizationEval


def instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every ``_target_`` entry of a dict-of-configs group (callbacks, loggers)."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if node and "_target_" in node]


def numbering_of_config(cfg: DictConfig) -> EpochNumbering:
    return EpochNumbering(cfg.train.get("compat", "fixed"))


def make_trainer(cfg: DictConfig, callbacks: list, numbering: EpochNumbering) -> pl.Trainer:
    """The Trainer of ``cfg.trainer`` (``max_epochs`` is the last epoch label: reference numbering
    makes one more pass), with the configured loggers, each given the flattened config."""
    kwargs = trainer_kwargs(cfg.trainer)
    if kwargs.get("max_epochs") is not None:
        kwargs["max_epochs"] = numbering.passes(kwargs["max_epochs"])
    trainer = pl.Trainer(
        **kwargs, callbacks=callbacks, logger=instantiate_group(cfg.get("logger")) or False
    )
    columns = config_columns(cfg)
    for logger in trainer.loggers:
        logger.log_hyperparams(columns)
    return trainer


def make_fit(cfg: DictConfig, data: LMData, model, extra_callbacks: list | None = None) -> Fit:
    """The trainer and module of a run; ``extra_callbacks`` carries regularizers."""
    check_windows(cfg.eval.prompt_len, cfg.eval.k, data.max_ctx)
    numbering = numbering_of_config(cfg)
    module = LMModule(
        model,
        cfg.optim,
        data.pad_id,
        mask_padding=cfg.train.mask_padding,
        run_config=OmegaConf.to_container(cfg, resolve=True),
        numbering=numbering,
    )
    evaluator = MemorizationEval(data, cfg.eval, cfg.train.eval_every)
    callbacks = [*instantiate_group(cfg.get("callbacks")), evaluator, *(extra_callbacks or [])]
    return Fit(make_trainer(cfg, callbacks, numbering), module, evaluator)
