"""The unlearning runner (unlearning spec §3, §14.2): ``run(cfg) -> dict``.

1. load the model and the data it was trained on (:func:`~memlab.unlearn.subject.load_subject`);
2. base metrics with :func:`~memlab.metrics.evaluate.evaluate_model` and the memorized set;
3. forget/retain sets (:mod:`memlab.unlearn.sets`);
4. the method's edit, timed alone (``cost/seconds``), applied to the model;
5. the same metrics after the edit; one results-store row (flat config + ``before/<metric>`` +
   ``after/<metric>`` + ``cost/seconds`` + ``edit/n_changed``), ``summary.json``, ``edit.safetensors``
   and, with ``save_model: true``, the edited model.

Nothing memorized → a clear message and only the base row (as the reference). ``apply_edit=<file>``
re-applies a saved Edit instead of running a method and reproduces the run's metrics.
The reference cached base statistics and memorized sets next to the checkpoint keyed only by its
path (§13 item 21); here they are recomputed per run (cheap, and never stale).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from memlab.errors import ConfigError
from memlab.metrics.evaluate import evaluate_model
from memlab.models.edit import Edit
from memlab.runs import finish, output_dir
from memlab.unlearn.registry import ELEVEN, METHODS, UnlearnContext, get_method
from memlab.unlearn.sets import build_sets
from memlab.unlearn.subject import Subject, describe, load_subject
from memlab.unlearn.weight.common import check_ratio

log = logging.getLogger(__name__)


def method_name(cfg: DictConfig) -> str:
    """The selected method (``unlearn.name``), checked against the registry."""
    name = cfg.unlearn.get("name") or cfg.unlearn.get("method")
    import memlab.unlearn.catalog  # noqa: F401  (registers every method)

    if name not in METHODS:
        raise ConfigError(
            f"unknown unlearning method unlearn.name='{name}'; the eleven: {', '.join(ELEVEN)}"
        )
    return str(name)


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


def edit_and_measure(
    cfg: DictConfig, subject: Subject, edit_fn, out: Path, timed: bool = True
) -> tuple[Edit, dict[str, Any]]:
    """Run ``edit_fn() -> Edit`` (timed alone unless the edit was loaded), apply it, save it,
    return it with its metrics."""
    start = time.perf_counter()
    edit = edit_fn()
    if timed:
        edit.seconds = time.perf_counter() - start
    edit.apply(subject.model)
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
    return edit, metrics


def run(cfg: DictConfig) -> dict[str, Any]:
    """One unlearning run (or ``apply_edit`` re-application); returns the results row's metrics."""
    name = method_name(cfg)
    if not cfg.get("apply_edit"):
        check_ratio(cfg.unlearn.ratio)
    out = output_dir(cfg)
    subject = load_subject(cfg)
    before, base = evaluate_model(subject.model, subject.data, subject.eval_cfg)
    row: dict[str, Any] = {
        "unlearn.method": name,
        **describe(subject),
        **prefixed(before, "before"),
    }

    if cfg.get("apply_edit"):
        edit_file = Path(cfg.apply_edit)
        if not edit_file.is_file():
            raise ConfigError(f"apply_edit={edit_file} does not exist")
        _edit, metrics = edit_and_measure(
            cfg, subject, lambda: Edit.load(edit_file), out, timed=False
        )  # cost/seconds: the original edit's time
        return finish(cfg, {**row, "edit/file": str(edit_file), **metrics})

    unlearn = cfg.unlearn
    sets = build_sets(
        cfg.forget_set,
        subject.model,
        subject.data,
        subject.eval_cfg,
        base,
        unlearn.get("compat", "fixed"),
        unlearn.get("retain_size"),
        int(cfg.seed),
    )
    row.update({"forget/n": float(len(sets.forget)), "retain/n": float(len(sets.retain))})
    if len(sets.forget) == 0:
        log.warning(
            "nothing memorized (forget_set=%s is empty): only the base row is written",
            cfg.forget_set,
        )
        print(f"memlab: nothing to unlearn: the forget set '{cfg.forget_set}' is empty")
        return finish(cfg, {**row, "unlearn/skipped": "nothing memorized"})

    method = get_method(name)
    ctx = context(cfg, subject)
    pl.seed_everything(int(cfg.seed), verbose=False)
    _edit, metrics = edit_and_measure(
        cfg, subject, lambda: method(subject.model, sets.forget, sets.retain, unlearn, ctx), out
    )
    log.info(
        "%s: mem %.1f%% -> %.1f%%, acc %.2f -> %.2f, %.1f s, %d entries",
        name,
        before.get("mem/perc", float("nan")),
        metrics.get("after/mem/perc", float("nan")),
        before.get("util/acc_mean", float("nan")),
        metrics.get("after/util/acc_mean", float("nan")),
        metrics["cost/seconds"],
        int(metrics["edit/n_changed"]),
    )
    return finish(cfg, {**row, **metrics})
