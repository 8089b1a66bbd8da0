"""The audit runner: ``run(cfg) -> dict`` (docs/audit.md).

1. load the model and its training data like an unlearning run
   (:func:`memlab.unlearn.subject.load_subject`);
2. the forget rows: the artifact rows the *unedited* model (``base_ckpt``, else ``ckpt``) memorized (``forget_set=mem``, the
   unlearning runner's forget set) or every artifact row (``forget_set=artifact``); their split
   into the relearning attacker's share and the held-out rest, and the base model's memorization
   of the held-out rows;
3. apply the Edit (``edit=<edit.safetensors>``; none = audit the checkpoint itself);
4. every audit of the model: ``mem/*`` + ``util/*``, relearning, quantization, membership
   inference, extraction; with ``oracle=true`` the same for the retrain oracle (``oracle/*``);
5. ``summary.json`` and one results-store row.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from memlab.audit.extract import extraction_curves
from memlab.audit.mia import membership_inference, nonmember_sample
from memlab.audit.oracle import retrain_oracle
from memlab.audit.quant import quantized_copy, schemes
from memlab.audit.relearn import KINDS, curve_summary, relearn_curve, split_forget
from memlab.data.lm_data import ArtifactSet
from memlab.errors import ConfigError
from memlab.metrics.evaluate import evaluate_model, memorization, memorization_metrics
from memlab.metrics.forward import model_device
from memlab.models.build import load_trained_model
from memlab.models.edit import Edit
from memlab.runs import finish
from memlab.unlearn.subject import Subject, describe, load_subject

log = logging.getLogger(__name__)

FORGET_SETS = ("mem", "artifact")


@dataclass
class AuditSets:
    """The rows every audited model (mitigated or oracle) is measured on."""

    forget: torch.Tensor  # indices into data.artifact
    members: ArtifactSet  # the forget rows
    nonmembers: ArtifactSet | None  # same generator, never trained on
    attacker_rows: torch.Tensor  # the relearning attacker's share of the forget rows
    heldout: ArtifactSet  # the other forget rows (relearning is measured on them)
    heldout_base: float  # the unedited model's memorization (%) of ``heldout``


def forget_indices(forget_set: str, base: nn.Module, subject: Subject) -> torch.Tensor:
    """Indices of the forget rows in ``data.artifact`` (see the module docstring)."""
    data = subject.data
    if forget_set not in FORGET_SETS:
        raise ConfigError(f"forget_set={forget_set}: unknown; use {' or '.join(FORGET_SETS)}")
    if data.artifact is None:
        raise ConfigError("the checkpoint's data has no artifact rows: nothing to audit")
    if forget_set == "artifact":
        return torch.arange(len(data.artifact))
    verdict = memorization(base, data.artifact, subject.eval_cfg, data.eos_id)
    return (verdict.memorized & verdict.evaluable).nonzero().squeeze(1)


def nonmember_pool(subject: Subject, forget_set: str) -> ArtifactSet | None:
    """Artifact rows of the same generator that were never trained on (evaluable ones for
    ``forget_set=mem``, whose members are all evaluable)."""
    pool = subject.data.nonmembers
    if pool is None or forget_set == "artifact" or pool.kind == "natural":
        return pool
    verdict = memorization(subject.model, pool, subject.eval_cfg, subject.data.eos_id)
    return pool.subset(verdict.evaluable.nonzero().squeeze(1))


def pre_mitigation(cfg: DictConfig, subject: Subject) -> tuple[nn.Module, DictConfig | None]:
    """The model before any mitigation and its training config: ``base_ckpt`` (e.g. the model a
    fine-tuned ``ckpt`` started from), else the audited checkpoint itself (before its Edit)."""
    if not cfg.get("base_ckpt"):
        return subject.model, subject.origin if subject.ckpt is not None else None
    model, run_cfg = load_trained_model(cfg.base_ckpt, subject.data)
    return model.to(model_device(subject.model)), run_cfg


def audit_sets(cfg: DictConfig, subject: Subject, base_model: nn.Module) -> AuditSets:
    """Forget rows, non-members and the relearning split, measured on the unedited model."""
    artifact = subject.data.artifact
    forget = forget_indices(cfg.forget_set, base_model, subject)
    if len(forget) < 2:
        raise ConfigError(
            f"forget_set={cfg.forget_set} holds {len(forget)} rows; the audit needs at least 2"
        )
    attacker, heldout = split_forget(len(forget), float(cfg.relearn.subset_share), int(cfg.seed))
    heldout_rows = artifact.subset(forget[heldout])
    base = memorization(base_model, heldout_rows, subject.eval_cfg, subject.data.eos_id)
    pool = nonmember_pool(subject, cfg.forget_set)
    if pool is None:
        log.warning("the data has no non-member rows: the membership inference keys are NaN")
    return AuditSets(
        forget=forget,
        members=artifact.subset(forget),
        nonmembers=None if pool is None else nonmember_sample(pool, len(forget), int(cfg.seed)),
        attacker_rows=artifact.rows[forget[attacker]],
        heldout=heldout_rows,
        heldout_base=base.metrics()["mem/perc"],
    )


def relearning(cfg: DictConfig, model: nn.Module, subject: Subject, sets: AuditSets) -> dict:
    """Both relearning curves (``audit/relearn/...``)."""
    train_rows = {"forget_subset": sets.attacker_rows, "clean": subject.data.clean_train()}
    out: dict[str, Any] = {}
    for kind in KINDS:
        if len(train_rows[kind]) == 0:
            log.warning("no %s rows to relearn from: its relearning keys are empty", kind)
        curve = relearn_curve(
            model,
            train_rows[kind],
            sets.heldout,
            subject.eval_cfg,
            eos_id=subject.data.eos_id,
            pad_id=subject.data.pad_id,
            relearn_cfg=cfg.relearn,
            seed=int(cfg.seed),
        )
        out.update(curve_summary(kind, curve, sets.heldout_base))
    return out


def quantization(model: nn.Module, subject: Subject, quant_cfg) -> dict[str, float]:
    """Memorization after each weight-quantization scheme (``audit/quant/<scheme>/mem/perc``)."""
    out = {}
    for name, scheme in schemes(quant_cfg).items():
        quantized = quantized_copy(model, **scheme)
        metrics, _ = memorization_metrics(quantized, subject.data, subject.eval_cfg)
        out[f"audit/quant/{name}/mem/perc"] = metrics.get("mem/perc", float("nan"))
    return out


def audit_model(cfg: DictConfig, model: nn.Module, subject: Subject, sets: AuditSets) -> dict:
    """Every audit of ``model`` as one flat dict."""
    data, eval_cfg = subject.data, subject.eval_cfg
    metrics, _ = evaluate_model(model, data, eval_cfg)
    return {
        **metrics,
        **relearning(cfg, model, subject, sets),
        **quantization(model, subject, cfg.quant),
        **membership_inference(
            model, sets.members, sets.nonmembers, eval_cfg, eos_id=data.eos_id, mia_cfg=cfg.mia
        ),
        **extraction_curves(
            model, data.memorization_set(), eval_cfg, data.eos_id, list(cfg.extract.probs)
        ),
    }


def apply_edit(cfg: DictConfig, model: nn.Module) -> dict[str, Any]:
    """Apply ``edit=<file>`` to ``model`` (nothing without one); the row's ``edit/*`` facts."""
    if not cfg.get("edit"):
        return {"edit/method": "none", "audit/label": cfg.get("label") or "none"}
    path = Path(cfg.edit)
    if not path.is_file():
        raise ConfigError(f"edit={path} does not exist")
    edit = Edit.load(path)
    edit.apply(model)
    return {
        "edit/method": edit.method,
        "edit/n_changed": float(edit.n_changed),
        "audit/label": cfg.get("label") or edit.method,
    }


def oracle_audit(
    cfg: DictConfig, subject: Subject, sets: AuditSets, run_cfg: DictConfig | None
) -> dict[str, Any]:
    """The audits of the retrain oracle (trained like ``run_cfg``), prefixed ``oracle/``."""
    if run_cfg is None:
        raise ConfigError("oracle=true needs a memlab checkpoint (ckpt=...) to retrain")
    model = retrain_oracle(run_cfg, subject.data, sets.forget, cfg.paths.cache_dir)
    return {f"oracle/{k}": v for k, v in audit_model(cfg, model, subject, sets).items()}


def run(cfg: DictConfig) -> dict[str, Any]:
    """One audit of ``ckpt`` (+ ``edit``); returns the results row's metrics."""
    start = time.perf_counter()
    subject = load_subject(cfg)
    base_model, base_run_cfg = pre_mitigation(cfg, subject)
    sets = audit_sets(cfg, subject, base_model)
    del base_model
    row: dict[str, Any] = {
        **describe(subject),
        **apply_edit(cfg, subject.model),
        "forget/n": float(len(sets.forget)),
        "audit/relearn/heldout/n": float(len(sets.heldout)),
        "audit/relearn/heldout/base/mem/perc": sets.heldout_base,
        "audit/mia/nonmembers/n": float(len(sets.nonmembers or [])),
    }
    row.update(audit_model(cfg, subject.model, subject, sets))
    if cfg.oracle:
        row.update(oracle_audit(cfg, subject, sets, base_run_cfg))
    row["audit/seconds"] = time.perf_counter() - start
    log.info(
        "audit: mem %.1f%%, relearn auc %s, int4 mem %.1f%%, loss-MIA AUC %s",
        row.get("mem/perc", float("nan")),
        row.get("audit/relearn/forget_subset/auc"),
        row.get("audit/quant/int4/mem/perc", float("nan")),
        row.get("audit/mia/loss/auc"),
    )
    return finish(cfg, row)
