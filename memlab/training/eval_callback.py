"""Evaluation every ``train.eval_every`` epochs: memorization and utility on the named sets.

Epoch numbering follows ``train.compat`` (:mod:`memlab.training.epochs`, deviations.md D10): by
default a value logged at epoch e is measured after e full passes over the data (e = 1 …
max_epochs); the final epoch is always evaluated.
"""

from __future__ import annotations

import logging
import time

import pytorch_lightning as pl

from memlab.data.bundle import LMData
from memlab.metrics.evaluate import evaluate_model
from memlab.training.epochs import numbering_of

log = logging.getLogger(__name__)


class MemorizationEval(pl.Callback):
    """Evaluates the module's model and logs the flat metric dict; keeps the history (restored on
    resume) so the run's summary and the memorization-over-training plot survive interruptions."""

    def __init__(self, data: LMData, eval_cfg, every: int) -> None:
        self.data = data
        self.eval_cfg = eval_cfg
        self.every = max(1, int(every))
        self.history: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        numbering = numbering_of(pl_module)
        if not numbering.due(trainer.current_epoch, self.every, trainer.max_epochs or 0):
            return
        t0 = time.perf_counter()
        metrics, _ = evaluate_model(pl_module.model, self.data, self.eval_cfg)
        metrics["cost/eval_seconds"] = time.perf_counter() - t0
        pl_module.log_dict(metrics, on_step=False, on_epoch=True)
        label = numbering.label(trainer.current_epoch)
        self.history.append({"epoch": label, **metrics})
        log.info(
            "epoch %d: mem/perc=%.2f util/acc_mean=%.2f",
            label,
            metrics.get("mem/perc", float("nan")),
            metrics.get("util/acc_mean", float("nan")),
        )

    @property
    def latest(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}

    def state_dict(self) -> dict:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = list(state_dict.get("history", []))
