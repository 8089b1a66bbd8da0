"""Subnet and BalancedSubnet (new in the paper; BalancedSubnet is its headline method; unlearning
spec §7.5, §7.6). Both learn a supermask over the MLP weight matrices that drops exactly
⌊numel · ratio⌋ entries per matrix (:mod:`memlab.unlearn.weight.supermask`); they differ only in
their data and objective:

- ``subnet``: gradient *ascent* on the forget loss, loss = −mean ℓ over a forget batch;
- ``balanced_subnet``: shuffled batches mixing forget and retain rows,
  loss = −(1−α)·mean_forget ℓ + α·mean_retain ℓ (α = ``loss_weighting``), so the mask raises the
  forget loss while keeping the retain loss low.

Differences from the reference: Subnet's forget loader is shuffled (the reference iterated it in a
fixed order, §13 item 12; ``compat: reference`` keeps it unshuffled); a BalancedSubnet batch without
forget (or retain) rows contributes 0 for that group instead of NaN (§13 item 13); Pythia keeps
momentum and weight decay (the reference dropped them for Subnet there).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from memlab.models.edit import Edit
from memlab.unlearn.losses import signed_group_loss
from memlab.unlearn.registry import METHODS, UnlearnContext
from memlab.unlearn.weight.common import check_ratio, make_edit
from memlab.unlearn.weight.supermask import train_supermask


def ascent_objective(losses: torch.Tensor, is_forget: torch.Tensor) -> torch.Tensor:
    """Subnet: −mean forget loss (every row of its batches is a forget row)."""
    return -losses.mean()


@METHODS.register("subnet")
def subnet(
    model: nn.Module, forget: torch.Tensor, retain: torch.Tensor, cfg: Any, ctx: UnlearnContext
) -> Edit:
    """A supermask trained by gradient ascent on the forget loss."""
    check_ratio(cfg.ratio)
    shuffle = cfg.get("compat", "fixed") != "reference"
    empty = forget[:0]
    keep = train_supermask(
        model, forget, empty, ascent_objective, cfg, ctx.seed, shuffle, ctx.trainer
    )
    return make_edit("subnet", keep, cfg)


@METHODS.register("balanced_subnet")
def balanced_subnet(
    model: nn.Module, forget: torch.Tensor, retain: torch.Tensor, cfg: Any, ctx: UnlearnContext
) -> Edit:
    """A supermask trained to raise the forget loss and keep the retain loss (weight α)."""
    check_ratio(cfg.ratio)
    alpha = float(cfg.loss_weighting)

    def objective(losses: torch.Tensor, is_forget: torch.Tensor) -> torch.Tensor:
        return signed_group_loss(losses, is_forget, alpha)

    keep = train_supermask(model, forget, retain, objective, cfg, ctx.seed, True, ctx.trainer)
    return make_edit("balanced_subnet", keep, cfg)
