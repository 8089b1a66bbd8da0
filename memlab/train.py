"""``python -m memlab.train``: train a model on data with a planted artifact (the paper, §3).

Examples::

    python -m memlab.train data=mult artifact=noise model.n_layer=4 seed=1
    python -m memlab.train regularizer=spectral_norm regularizer.lam=0.01
    python -m memlab.train ckpt_path=outputs/runs/train/<time>/checkpoints/last.ckpt   # resume
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig

from memlab.data.build import load_data
from memlab.data.datamodule import LMDataModule
from memlab.errors import ConfigError
from memlab.models.build import build_model
from memlab.regularizers.build import build_regularizers
from memlab.runs import entry_point, finish, output_dir
from memlab.training.setup import make_fit

log = logging.getLogger(__name__)


def resume_point(cfg: DictConfig) -> str | None:
    """``ckpt_path`` when given; else the run directory's own ``last.ckpt`` when one exists, so a
    killed run that is started again (a re-run sweep: its run directory is named by the run hash)
    continues from the epoch it reached."""
    if cfg.get("ckpt_path"):
        if not Path(cfg.ckpt_path).is_file():
            raise ConfigError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint")
        return str(cfg.ckpt_path)
    last = output_dir(cfg) / "checkpoints" / "last.ckpt"
    if last.is_file():
        log.info("resuming from %s", last)
        return str(last)
    return None


def run(cfg: DictConfig) -> dict[str, float]:
    """Train, evaluate, write ``summary.json`` and a results-store row; returns the final metrics."""
    resume = resume_point(cfg)
    data = load_data(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    model = build_model(cfg.model, data)
    fit = make_fit(cfg, data, model, build_regularizers(cfg.regularizer, cfg.seed))
    t0 = time.perf_counter()
    fit.trainer.fit(fit.module, datamodule=LMDataModule(cfg, data), ckpt_path=resume)
    metrics = {
        **fit.evaluator.latest,
        "train/loss": float(fit.trainer.callback_metrics.get("train/loss", float("nan"))),
        "cost/seconds": time.perf_counter() - t0,
        "epochs": float(fit.trainer.current_epoch),
    }
    return finish(cfg, metrics)


main = entry_point("train", run)


if __name__ == "__main__":
    main()
