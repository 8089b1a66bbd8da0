"""``run(cfg)``: fine-tune a trained checkpoint with one of the recipes (spec §12).

The run config is the base run's config (data, artifact, seed, model, eval, regularizer, read from
the checkpoint's ``memlab_config``) with this invocation's trainer, loggers, callbacks, paths and
fine-tuning settings on top; ``model=``, ``eval=`` and ``regularizer=`` may be set explicitly (a
model that does not match the checkpoint fails in one line). The data is always the base run's, so
the clean twins are those of the rows the model memorized. The fit, its evaluation every epoch, the
``summary.json`` and the results-store row are those of training (:func:`make_fit`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict

from memlab.data.build import load_data
from memlab.errors import ConfigError
from memlab.finetune.base_lookup import find_base_checkpoint
from memlab.finetune.recipes import RecipeDataModule, recipe_rows
from memlab.finetune.start_checkpoint import completed_epochs, save_start_checkpoint
from memlab.models.build import load_trained_model, read_checkpoint
from memlab.regularizers.build import build_regularizers
from memlab.runs import finish, output_dir
from memlab.training.setup import make_fit

log = logging.getLogger(__name__)
INVOCATION_KEYS = ("task_name", "paths", "trainer", "logger", "callbacks", "finetune", "results")
OPTIONAL_KEYS = ("model", "eval", "regularizer")  # null = the base run's


def base_checkpoint_path(cfg: DictConfig) -> Path:
    """``ckpt`` if given (it must exist), else the results-store match of ``base``."""
    if cfg.get("ckpt"):
        return Path(cfg.ckpt)
    return find_base_checkpoint(cfg.paths.results_dir, OmegaConf.to_container(cfg.base))


def finetune_config(cfg: DictConfig, base_cfg: DictConfig, ckpt: Path, base_epochs: int):
    """The base run's config with this invocation's settings on top (see the module docstring)."""
    run_cfg = base_cfg.copy()
    with open_dict(run_cfg):
        for key in (*INVOCATION_KEYS, *OPTIONAL_KEYS):
            if key in INVOCATION_KEYS or cfg.get(key) is not None:
                run_cfg[key] = cfg.get(key)
        run_cfg.ckpt = str(ckpt)
        run_cfg.ckpt_path = cfg.get("ckpt_path")
        run_cfg.base = cfg.get("base")
        run_cfg.data.cache_dir = "${paths.cache_dir}"  # this invocation's cache (same tensors)
        run_cfg.optim.lr = cfg.finetune.lr
        run_cfg.train.eval_every = cfg.finetune.eval_every
        run_cfg.train.batch_size = cfg.finetune.batch_size or run_cfg.train.batch_size
        run_cfg.trainer.max_epochs = base_epochs + cfg.finetune.epochs
    return run_cfg


def base_metrics(base: dict) -> dict[str, float]:
    """The base run's final metrics (its evaluation history), prefixed ``base/``."""
    history = base.get("callbacks", {}).get("MemorizationEval", {}).get("history", [])
    latest = history[-1] if history else {}
    keys = ("mem/perc", "mem/perc_clean", "util/acc_mean", "util/ppl")
    return {f"base/{k}": float(latest[k]) for k in keys if k in latest}


def run(cfg: DictConfig) -> dict[str, float]:
    """Fine-tune, evaluate every epoch, write ``summary.json`` and a results-store row."""
    ckpt = base_checkpoint_path(cfg)
    base = read_checkpoint(ckpt)  # one-line error for a missing or foreign file
    if cfg.get("ckpt_path") and not Path(cfg.ckpt_path).is_file():
        raise ConfigError(f"ckpt_path={cfg.ckpt_path} does not exist")
    start_epochs = completed_epochs(base)
    run_cfg = finetune_config(cfg, OmegaConf.create(base["memlab_config"]), ckpt, start_epochs)
    out = output_dir(run_cfg)
    data = load_data(run_cfg)
    pl.seed_everything(run_cfg.seed, workers=True, verbose=False)
    model, _ = load_trained_model(ckpt, data, run_cfg.model)  # one-line error on a mismatch
    model.train()  # Lightning keeps each submodule's mode; the loader returns eval mode
    rows = recipe_rows(cfg.finetune.recipe, data)
    fit = make_fit(run_cfg, data, model, build_regularizers(run_cfg.regularizer, run_cfg.seed))
    resume = cfg.get("ckpt_path")
    start = resume or save_start_checkpoint(
        base, fit, cfg.finetune.inherit_optimizer, out / "finetune_start.ckpt"
    )
    log.info("fine-tuning %s on %d rows (%s)", ckpt, len(rows), cfg.finetune.recipe)
    t0 = time.perf_counter()
    try:
        datamodule = RecipeDataModule(run_cfg, data, rows)
        fit.trainer.fit(fit.module, datamodule=datamodule, ckpt_path=str(start))
    finally:
        if not resume:
            Path(start).unlink(missing_ok=True)
    metrics = {
        **base_metrics(base),
        **fit.evaluator.latest,
        "train/loss": float(fit.trainer.callback_metrics.get("train/loss", float("nan"))),
        "cost/seconds": time.perf_counter() - t0,
        "epochs": float(fit.trainer.current_epoch),
        "finetune/epochs": float(fit.trainer.current_epoch - start_epochs),
        "finetune/rows": float(len(rows)),
    }
    return finish(run_cfg, metrics)
