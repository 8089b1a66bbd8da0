"""Assemble a Lightning fit from a config: data, model, module, callbacks, loggers, trainer.

Shared by ``memlab.train`` and ``memlab.finetune`` so both produce the same outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from memlab.data.bundle import LMData
from memlab.metrics.evaluate import check_windows
from memlab.runs import trainer_kwargs
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


def make_fit(cfg: DictConfig, data: LMData, model, extra_callbacks: list | None = None) -> Fit:
    """The trainer and module of a run; ``extra_callbacks`` carries regularizers."""
    check_windows(cfg.eval.prompt_len, cfg.eval.k, data.max_ctx)
    module = LMModule(
        model,
        cfg.optim,
        data.pad_id,
        cfg.train.mask_padding,
        run_config=OmegaConf.to_container(cfg, resolve=True),
    )
    evaluator = MemorizationEval(data, cfg.eval, cfg.train.eval_every)
    callbacks = [*instantiate_group(cfg.get("callbacks")), evaluator, *(extra_callbacks or [])]
    loggers = instantiate_group(cfg.get("logger")) or False
    trainer = pl.Trainer(**trainer_kwargs(cfg.trainer), callbacks=callbacks, logger=loggers)
    return Fit(trainer, module, evaluator)
