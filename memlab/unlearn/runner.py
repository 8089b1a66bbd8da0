"""The unlearning runner: ``run(cfg) -> dict``.

1. load the model and the data it was trained on (:func:`~memlab.unlearn.subject.load_subject`);
2. base metrics with :func:`~memlab.metrics.evaluate.evaluate_model` and the memorized set;
3. forget/retain sets (:mod:`memlab.unlearn.sets`);
4. the method's edit (:data:`~memlab.unlearn.methods.METHODS`), timed alone (``cost/seconds``),
   applied to the model;
5. the same metrics after the edit; one results-store row (flat config + the subject's data,
   artifact, model and eval settings + ``before/<metric>`` + ``after/<metric>`` + ``cost/seconds``
   + ``edit/n_changed``), ``summary.json``, ``edit.safetensors`` and, with ``save_model: true``,
   the edited model.

Nothing memorized → a clear message and only the base row (as the reference). ``apply_edit=<file>``
re-applies a saved Edit instead of running a method and reproduces the run's metrics; its row
records the method and hyperparameters stored in the edit. Base statistics and memorized sets are
recomputed per run (deviations.md D59).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from memlab.errors import ConfigError
from memlab.metrics.evaluate import evaluate_model
from memlab.models.edit import Edit
from memlab.runs import finish, flatten, output_dir, timed
from memlab.unlearn.common import UnlearnContext, check_ratio
from memlab.unlearn.methods import method_named
from memlab.unlearn.sets import build_sets
from memlab.unlearn.subject import Subject, describe, load_subject

log = logging.getLogger(__name__)


def prefixed(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {f"{prefix}/{k}": v for k, v in metrics.items()}


def context(cfg: DictConfig, subject: Subject) -> UnlearnContext:
    trainer = cfg.get("trainer")
    return UnlearnContext(
        prompt_len=int(subject.eval_cfg.prompt_len),
        k=int(subject.eval_cfg.k),
        pad_id=subject.data.pad_id,
        eos_id=subject.data.eos_id,
        seed=int(cfg.seed),
        trainer=OmegaConf.to_container(trainer, resolve=True) if trainer is not None else None,
    )


def measure_edited(cfg: DictConfig, subject: Subject, edit: Edit, out: Path) -> dict[str, Any]:
    """Metrics of the edited model; the edit (and, if asked, the model) saved in ``out``."""
    after, _ = evaluate_model(subject.model, subject.data, subject.eval_cfg)
    edit.save(out / "edit.safetensors")
    metrics = {
        **prefixed(after, "after"),
        "cost/seconds": edit.seconds,
        "edit/n_changed": float(edit.n_changed),
        "edit/method": edit.method,
    }
    if cfg.get("save_model"):
        metrics["edit/model_path"] = str(subject.save_model(out))
    return metrics


def base_row(subject: Subject, method: str) -> tuple[dict[str, Any], Any]:
    """The row's facts before any edit (and the memorization result the forget set comes from)."""
    before, base = evaluate_model(subject.model, subject.data, subject.eval_cfg)
    return {"unlearn.method": method, **describe(subject), **prefixed(before, "before")}, base


def read_edit(edit_file: Path) -> Edit:
    """The saved Edit, or one line naming the file."""
    if not edit_file.is_file():
        raise ConfigError(
            f"apply_edit={edit_file}: no such file; allowed: a saved edit.safetensors"
        )
    try:
        return Edit.load(edit_file)
    except Exception as err:  # safetensors, JSON and key errors of a damaged file
        raise ConfigError(
            f"apply_edit={edit_file}: not a readable edit ({type(err).__name__}); allowed: an "
            "edit.safetensors written by memlab.unlearn"
        ) from err


def edit_columns(cfg: DictConfig, edit: Edit) -> dict[str, Any]:
    """``unlearn.*`` columns from the edit's own method and hyperparameters (the selected
    ``unlearn`` group's other keys are blanked: they were not used)."""
    blank = {f"unlearn.{k}": None for k in flatten(OmegaConf.to_container(cfg.unlearn))}
    stored = {f"unlearn.{k}": v for k, v in flatten(edit.hparams).items()}
    return {**blank, **stored, "unlearn.name": edit.method}


def reapply(cfg: DictConfig) -> dict[str, Any]:
    """``apply_edit=<file>``: apply a saved Edit and measure; cost/seconds is the original edit's."""
    edit_file = Path(cfg.apply_edit)
    edit = read_edit(edit_file)
    out = output_dir(cfg)
    subject = load_subject(cfg)
    row, _base = base_row(subject, edit.method)
    try:
        edit.apply(subject.model)
    except (ConfigError, RuntimeError, KeyError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(
            f"apply_edit={edit_file}: does not fit the model of ckpt={cfg.get('ckpt')} "
            f"({message}); allowed: an edit made from this model"
        ) from err
    metrics = measure_edited(cfg, subject, edit, out)
    return finish(cfg, {**row, **edit_columns(cfg, edit), "edit/file": str(edit_file), **metrics})


def run(cfg: DictConfig) -> dict[str, Any]:
    """One unlearning run (or ``apply_edit`` re-application); returns the results row's metrics."""
    if cfg.get("apply_edit"):
        return reapply(cfg)
    unlearn = cfg.unlearn
    name = unlearn.get("name")
    method = method_named(name)
    check_ratio(unlearn.ratio)
    out = output_dir(cfg)
    subject = load_subject(cfg)
    row, base = base_row(subject, name)

    sets = build_sets(
        cfg.forget_set,
        model=subject.model,
        data=subject.data,
        eval_cfg=subject.eval_cfg,
        base=base,
        compat=unlearn.get("compat", "fixed"),
        retain_size=unlearn.get("retain_size"),
        text=subject.is_text,
        seed=int(cfg.seed),
    )
    row.update({"forget/n": float(len(sets.forget)), "retain/n": float(len(sets.retain))})
    if len(sets.forget) == 0:
        log.warning(
            "nothing memorized (forget_set=%s is empty): only the base row is written",
            cfg.forget_set,
        )
        print(f"memlab: nothing to unlearn: the forget set '{cfg.forget_set}' is empty")
        return finish(cfg, {**row, "unlearn/skipped": "nothing memorized"})

    ctx = context(cfg, subject)
    pl.seed_everything(int(cfg.seed), verbose=False)
    edit, seconds = timed(
        lambda: method.edit(subject.model, sets.forget, sets.retain, unlearn, ctx)
    )
    edit.seconds = seconds  # the method alone, without loading and evaluation
    edit.apply(subject.model)
    metrics = measure_edited(cfg, subject, edit, out)
    log.info(
        "%s: mem %.1f%% -> %.1f%%, acc %.2f -> %.2f, %.1f s, %d entries",
        name,
        row.get("before/mem/perc", float("nan")),
        metrics.get("after/mem/perc", float("nan")),
        row.get("before/util/acc_mean", float("nan")),
        metrics.get("after/util/acc_mean", float("nan")),
        metrics["cost/seconds"],
        int(metrics["edit/n_changed"]),
    )
    return finish(cfg, {**row, **metrics})
