"""Forget and retain sets of an unlearning run (unlearning spec §3.3, §3.4).

``forget_set``:
- ``mem`` (the paper's setting): the artifact training rows the unedited model reproduces —
  memorized noised rows; for backdoors the triggered *training* rows on which the backdoor fires
  (success is then measured on the held-out triggered rows);
- ``artifact``: every artifact training row, memorized or not (the reference's ``noise`` set);
- a distribution name (e.g. ``seven``… as named by the data): that distribution's clean rows.

The retain set is every training row that carries no artifact (``data.clean_train()``), minus the
forget distribution, optionally subsampled to ``unlearn.retain_size`` rows.

Differences from the reference, both kept behind ``unlearn.compat: reference``: the reference put
all artifact rows into the retain set although they contain the forget set (contradictory +1/−1
labels for Greedy and BalancedSubnet, §13 item 14), and for backdoors it forgot the memorized rows
of the poisoned *test* set, on which it then measured success (train/eval leak, §13 item 15).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from memlab.data.bundle import LMData
from memlab.errors import ConfigError
from memlab.metrics.evaluate import MemorizationResult, memorization


@dataclass
class UnlearnSets:
    forget: torch.Tensor  # [F, T]
    retain: torch.Tensor  # [R, T]


def memorized_rows(
    model: nn.Module,
    data: LMData,
    eval_cfg,
    base: MemorizationResult | None,
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
    reference: bool,
) -> torch.Tensor:
    if name == "mem":
        return memorized_rows(model, data, eval_cfg, base, reference)
    if name == "artifact":
        return data.train[:0] if data.artifact is None else data.artifact.rows
    if name in data.dist_names:
        dist = data.dist_names.index(name)
        return data.train[(data.train_dist == dist) & (data.train_twin < 0)]
    known = ", ".join(["mem", "artifact", *data.dist_names])
    raise ConfigError(f"unknown forget_set='{name}'; known: {known}")


def retain_rows(
    forget_set: str, data: LMData, reference: bool, size: int | None, seed: int
) -> torch.Tensor:
    keep = torch.ones(len(data.train), dtype=torch.bool) if reference else data.train_twin < 0
    if forget_set in data.dist_names:
        keep &= data.train_dist != data.dist_names.index(forget_set)
    rows = data.train[keep]
    if size is not None and size < len(rows):
        order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
        rows = rows[order[: int(size)].sort().values]
    return rows


def build_sets(
    forget_set: str,
    model: nn.Module,
    data: LMData,
    eval_cfg,
    base: MemorizationResult | None,
    compat: str = "fixed",
    retain_size: int | None = None,
    seed: int = 0,
) -> UnlearnSets:
    """The forget and retain rows for ``forget_set`` (see the module docstring)."""
    if compat not in ("fixed", "reference"):
        raise ConfigError(f"unlearn.compat='{compat}' must be fixed or reference")
    reference = compat == "reference"
    return UnlearnSets(
        forget_rows(forget_set, model, data, eval_cfg, base, reference),
        retain_rows(forget_set, data, reference, retain_size, seed),
    )
