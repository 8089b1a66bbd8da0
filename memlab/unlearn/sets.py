"""Forget and retain sets of an unlearning run.

``forget_set``:
- ``mem`` (the paper's setting): the artifact training rows the unedited model reproduces —
  memorized noised rows; for backdoors the triggered *training* rows on which the backdoor fires
  (success is then measured on the held-out triggered rows);
- ``artifact``: every artifact training row, memorized or not (the reference's ``noise`` set);
- a distribution name (e.g. ``seven``… as named by the data): that distribution's clean rows.

The retain set is every training row that carries no artifact (``data.clean_train()``), minus the
forget distribution: for text data (wikitext) its first 100,000 rows, as the reference
(deviations.md D51); ``unlearn.retain_size`` subsamples it instead. With ``unlearn.compat:
reference`` the artifact rows (each once, without duplicates) join the retain set although they
contain the forget set (deviations.md D49, D51), and the backdoor forget set is the memorized rows
of the poisoned test set (deviations.md D50).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from memlab.data.lm_data import LMData
from memlab.errors import ConfigError
from memlab.metrics.evaluate import MemorizationResult, memorization

COMPAT = ("fixed", "reference")
TEXT_RETAIN_ROWS = 100_000  # the reference's wikitext retain set: clean blocks 0 … 99,999


@dataclass
class UnlearnSets:
    forget: torch.Tensor  # [F, T]
    retain: torch.Tensor  # [R, T]


def memorized_rows(
    model: nn.Module,
    data: LMData,
    eval_cfg,
    base: MemorizationResult | None,
    *,
    reference: bool,
) -> torch.Tensor:
    """The artifact rows the model reproduces exactly (see the module docstring)."""
    if data.artifact is None or base is None:
        return data.train[:0]
    if data.heldout is not None and reference:  # reference: forget the poisoned test rows
        return data.heldout.rows[base.memorized & base.evaluable]
    if data.heldout is not None:  # backdoor: the triggered training rows on which it fires
        verdict = memorization(model, data.artifact, eval_cfg, data.eos_id)
        return data.artifact.rows[verdict.memorized & verdict.evaluable]
    return data.artifact.rows[base.memorized & base.evaluable]


def forget_rows(
    name: str,
    model: nn.Module,
    data: LMData,
    eval_cfg,
    base: MemorizationResult | None,
    *,
    reference: bool,
) -> torch.Tensor:
    if name == "mem":
        return memorized_rows(model, data, eval_cfg, base, reference=reference)
    if name == "artifact":
        return data.train[:0] if data.artifact is None else data.artifact.rows
    if name in data.dist_names:
        dist = data.dist_names.index(name)
        return data.train[(data.train_dist == dist) & (data.train_twin < 0)]
    known = ", ".join(["mem", "artifact", *data.dist_names])
    raise ConfigError(f"forget_set={name}: unknown; allowed: {known}")


def retain_rows(
    forget_set: str,
    data: LMData,
    *,
    reference: bool,
    size: int | None,
    text: bool,
    seed: int,
) -> torch.Tensor:
    keep = data.train_twin < 0
    if forget_set in data.dist_names:
        keep &= data.train_dist != data.dist_names.index(forget_set)
    rows = data.train[keep]
    if size is None and text:
        rows = rows[:TEXT_RETAIN_ROWS]
    elif size is not None and size < len(rows):
        order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
        rows = rows[order[: int(size)].sort().values]
    if reference and forget_set != "artifact" and data.artifact is not None:
        rows = torch.cat([rows, data.artifact.rows])
    return rows


def build_sets(
    forget_set: str,
    *,
    model: nn.Module,
    data: LMData,
    eval_cfg,
    base: MemorizationResult | None,
    compat: str = "fixed",
    retain_size: int | None = None,
    text: bool = False,
    seed: int = 0,
) -> UnlearnSets:
    """The forget and retain rows for ``forget_set`` (see the module docstring); ``text``: the
    subject's data is text (its default retain set is the first 100,000 clean rows)."""
    if compat not in COMPAT:
        raise ConfigError(f"unlearn.compat={compat}: unknown; allowed: {', '.join(COMPAT)}")
    reference = compat == "reference"
    return UnlearnSets(
        forget_rows(forget_set, model, data, eval_cfg, base, reference=reference),
        retain_rows(forget_set, data, reference=reference, size=retain_size, text=text, seed=seed),
    )
