"""The checkpoint a fine-tuning run starts from: the base run's checkpoint, adapted.

Fine-tuning resumes the base run through Lightning's own restore (``trainer.fit(ckpt_path=...)``),
so the model, the epoch counter (fine-tuning epochs continue the base run's numbering, as in the
reference, Q20), the evaluation history and the regularizer states come back exactly as saved, and
an interrupted fine-tuning run resumes from its own ``last.ckpt`` the same way. Two things change:

- the optimizer: by default the AdamW moments of pre-training are inherited (the reference's
  behaviour, Q20) with this run's hyper-parameters (e.g. the fine-tuning lr) written into the param
  groups; ``finetune.inherit_optimizer=false`` starts from a fresh AdamW state;
- callback states: only those of callbacks this run has (e.g. the base run's checkpoint callback,
  which wrote elsewhere, is dropped).
"""

from __future__ import annotations

from pathlib import Path

import torch

from memlab.training.setup import Fit


def completed_epochs(ckpt: dict) -> int:
    """Training passes done by the run that saved ``ckpt``: the epoch a resumed fit starts at
    (the fit loop's processed epochs; its ``epoch`` field lags by one when saved at an epoch end)."""
    progress = ckpt.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current")
    if progress:
        return int(max(progress["processed"], progress["completed"]))
    return int(ckpt.get("epoch", 0))


def optimizer_state(base: dict, fit: Fit, inherit: bool) -> dict:
    """AdamW state: the base run's moments (``inherit``) or none, with this run's param groups."""
    fresh = fit.module.configure_optimizers().state_dict()
    moments = (
        base["optimizer_states"][0]["state"] if inherit and base.get("optimizer_states") else {}
    )
    return {"state": moments, "param_groups": fresh["param_groups"]}


def start_checkpoint(base: dict, fit: Fit, inherit_optimizer: bool) -> dict:
    """The base checkpoint with the optimizer state and callback states of this fine-tuning run."""
    ckpt = dict(base)
    ckpt["optimizer_states"] = [optimizer_state(base, fit, inherit_optimizer)]
    ckpt["lr_schedulers"] = []
    keys = {cb.state_key for cb in fit.trainer.callbacks}
    ckpt["callbacks"] = {k: v for k, v in base.get("callbacks", {}).items() if k in keys}
    return ckpt


def save_start_checkpoint(base: dict, fit: Fit, inherit_optimizer: bool, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(start_checkpoint(base, fit, inherit_optimizer), path)
    return path
