"""One validation pass over a composed config, before any work: types and ranges per config group.

Every task runs :func:`validate` first (through :func:`memlab.runs.entry_point` and the sweep's
run executor), so bad input ends within seconds with one line,
``memlab: error: <key>=<value>: <why>; <what is allowed>``, instead of a traceback after the data set
was built. The table is the single place to look up what a key accepts; a key that a config does not
have is not checked (each task has its own groups), and ``null`` passes only where a rule allows it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from memlab.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    """What one key accepts: a type (``int``, ``float``, ``bool``, ``str``, ``list``), an optional
    range check, the sentence that describes the allowed values, and whether ``null`` is allowed."""

    kind: type
    allowed: str
    check: Callable[[Any], bool] | None = None
    nullable: bool = False


def at_least(low: float) -> Callable[[Any], bool]:
    return lambda v: v >= low


def above(low: float) -> Callable[[Any], bool]:
    return lambda v: v > low


def fraction(v: Any) -> bool:
    return 0.0 <= v <= 1.0


def one_of(*values: str) -> Rule:
    return Rule(str, f"one of {', '.join(values)}", lambda v: v in values)


COUNT = Rule(int, "an integer >= 1", at_least(1))
SIZE = Rule(int, "an integer >= 0", at_least(0))
OPTIONAL_COUNT = Rule(int, "an integer >= 1, or null", at_least(1), nullable=True)
POSITIVE = Rule(float, "a number > 0", above(0))
NON_NEGATIVE = Rule(float, "a number >= 0", at_least(0))
FRACTION = Rule(float, "a number in [0, 1]", fraction)
FLAG = Rule(bool, "true or false")

RULES: dict[str, Rule] = {
    "seed": SIZE,
    # data and artifact
    "data.num_main": COUNT,
    "data.num_extra": SIZE,
    "data.num_test": SIZE,
    "data.length": COUNT,
    "data.max_ctx": Rule(int, "an integer >= 8", at_least(8)),
    "data.data_seed": SIZE,
    "artifact.num_noise": SIZE,
    "artifact.noise_probs": Rule(
        list,
        "three probabilities (offsets 0, -1, +1) in [0, 1] that sum to 1",
        lambda v: len(v) == 3 and all(0 <= p <= 1 for p in v) and abs(sum(v) - 1) < 1e-6,
    ),
    "artifact.duplicate": FLAG,
    "artifact.kind": one_of("noise", "backdoor", "none"),
    "artifact.dup_powers": Rule(
        list,
        "a non-empty list of integers >= 0",
        lambda v: bool(v) and all(isinstance(x, int) and x >= 0 for x in v),
    ),
    # model, optimizer, training
    "model.n_layer": COUNT,
    "model.n_embd": COUNT,
    "model.n_head": COUNT,
    "optim.lr": POSITIVE,
    "optim.weight_decay": NON_NEGATIVE,
    "optim.eps": POSITIVE,
    "optim.betas": Rule(
        list, "two numbers in [0, 1)", lambda v: len(v) == 2 and all(0 <= b < 1 for b in v)
    ),
    "trainer.max_epochs": COUNT,
    "trainer.devices": Rule(
        object,
        "an integer >= 1, -1 (all), auto, or a list of device ids",
        lambda v: v in (-1, "auto") or isinstance(v, list) or (isinstance(v, int) and v >= 1),
    ),
    "train.batch_size": COUNT,
    "train.eval_every": COUNT,
    "train.mask_padding": FLAG,
    "train.compat": one_of("fixed", "reference"),
    "callbacks.model_checkpoint.every_n_epochs": COUNT,
    "callbacks.model_checkpoint.every_n_steps": SIZE,
    "callbacks.model_checkpoint.keep_epochs": Rule(
        list, "a list of epochs >= 0", lambda v: all(isinstance(e, int) and e >= 0 for e in v)
    ),
    # memorization metric
    "eval.prompt_len": COUNT,
    "eval.k": COUNT,
    "eval.batch_size": COUNT,
    "eval.suppress_eos": FLAG,
    # regularizers and fine-tuning
    "regularizer.lam": NON_NEGATIVE,
    "regularizer.p_fixed": Rule(float, "a number in (0, 1]", lambda v: 0 < v <= 1),
    "regularizer.p_mem": FRACTION,
    "regularizer.dropc": FRACTION,
    "regularizer.buffer_size": COUNT,
    "regularizer.min_count": SIZE,
    "regularizer.n_power_iter": COUNT,
    "regularizer.squared": FLAG,
    "regularizer.attn_out_split": one_of("output", "input"),
    "finetune.recipe": one_of("clean_artifact", "all_clean", "both"),
    "finetune.inherit_optimizer": FLAG,
    "finetune.epochs": COUNT,
    "finetune.lr": POSITIVE,
    "finetune.eval_every": COUNT,
    "finetune.batch_size": OPTIONAL_COUNT,
    # unlearning
    "unlearn.ratio": FRACTION,
    "unlearn.epochs": COUNT,
    "unlearn.loss_weighting": FRACTION,
    "unlearn.lr": POSITIVE,
    "unlearn.batch_size": COUNT,
    "unlearn.retain_size": Rule(int, "an integer >= 0, or null", at_least(0), nullable=True),
    "unlearn.steps": COUNT,
    "unlearn.momentum": Rule(float, "a number in [0, 1)", lambda v: 0 <= v < 1),
    "unlearn.lambda_l1": NON_NEGATIVE,
    "unlearn.stop_loss": NON_NEGATIVE,
    "unlearn.stop_check": one_of("epochs", "step"),
    "unlearn.stop_check_epochs": COUNT,
    "unlearn.beta": POSITIVE,
    "unlearn.l": Rule(float, "a number < 0", lambda v: v < 0),
    "unlearn.r": Rule(float, "a number > 1", lambda v: v > 1),
    "unlearn.init": one_of("logit_p", "normal"),
    "unlearn.init_std": NON_NEGATIVE,
    "unlearn.count": one_of("all", "mlp"),
    "unlearn.num_grads": COUNT,
    "unlearn.block_size": COUNT,
    "unlearn.damp": POSITIVE,
    "unlearn.unit_chunk": COUNT,
    "unlearn.prompt_len": OPTIONAL_COUNT,
    "unlearn.weight_decay": NON_NEGATIVE,
    "unlearn.compat": one_of("fixed", "reference"),
    "forget_set": Rule(str, "mem, artifact or a distribution name"),
    "sweep.task": Rule(
        object,
        "a task name or {config, target}: pick a grid, e.g. experiment=paper/unlearn_tinymem",
        lambda v: isinstance(v, str | dict),
        nullable=True,  # a multi-stage sweep names its tasks in sweep.stages
    ),
    "seq_len": COUNT,
    # audits
    "relearn.steps": COUNT,
    "relearn.batch_size": COUNT,
    "relearn.subset_share": FRACTION,
    "relearn.lr": POSITIVE,
    "relearn.method": one_of("auto", "full", "lora"),
    "relearn.lora_rank": COUNT,
    "quant.group_size": COUNT,
    "mia.min_k": FRACTION,
    "mia.fpr": FRACTION,
    "mia.over_unlearning_below": FRACTION,
    "oracle": FLAG,
    # sweeps and reports
    "max_runs": OPTIONAL_COUNT,
    "show": SIZE,
    "max_cells": COUNT,
}


def _type_ok(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def check(key: str, value: Any, rule: Rule) -> None:
    """One key against its rule; a violation is one :class:`ConfigError` line."""
    if value is None:
        if rule.nullable:
            return
        raise ConfigError(f"{key}=null: a value is required; {rule.allowed}")
    if not _type_ok(value, rule.kind):
        raise ConfigError(f"{key}={value}: not {rule.kind.__name__}; {rule.allowed}")
    if rule.check is not None and not rule.check(value):
        raise ConfigError(f"{key}={value}: out of range; {rule.allowed}")


def _window_fits(cfg: DictConfig) -> None:
    """The memorization window (prompt + continuation) must fit in the context."""
    prompt, k, ctx = (
        OmegaConf.select(cfg, key) for key in ("eval.prompt_len", "eval.k", "data.max_ctx")
    )
    if None not in (prompt, k, ctx) and prompt + k > ctx:
        raise ConfigError(
            f"data.max_ctx={ctx}: too short for eval.prompt_len + eval.k = {prompt + k}; "
            "raise data.max_ctx or lower the window"
        )


def _heads_divide_width(cfg: DictConfig) -> None:
    width, heads = OmegaConf.select(cfg, "model.n_embd"), OmegaConf.select(cfg, "model.n_head")
    if isinstance(width, int) and isinstance(heads, int) and heads > 0 and width % heads:
        raise ConfigError(f"model.n_head={heads}: must divide model.n_embd={width}")


def validate(cfg: DictConfig) -> DictConfig:
    """Check every key of :data:`RULES` that ``cfg`` has, then the cross-key rules; returns ``cfg``."""
    for key, rule in RULES.items():
        if OmegaConf.select(cfg, key, default="__absent__", throw_on_missing=False) == "__absent__":
            continue
        value = OmegaConf.select(cfg, key)
        check(key, OmegaConf.to_object(value) if OmegaConf.is_config(value) else value, rule)
    _window_fits(cfg)
    _heads_divide_width(cfg)
    return cfg
