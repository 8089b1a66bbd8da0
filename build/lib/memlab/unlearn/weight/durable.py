"""Durable and Durable Aggregate (new in the paper; gradient-magnitude masking after Neurotoxin,
Zhang et al. 2022; unlearning spec §7.2, §7.3).

G = Σ over forget batches of ∇(batch-mean token CE) — the summed gradient of the forget loss.
The MLP entries (weights and biases) with the largest |G| are the ones the memorized sequences
pull on hardest; they are zeroed:

- ``durable``: per tensor, its ⌊numel · ratio⌋ largest |G| ("layer-wise" ranking);
- ``durable_aggregate``: globally, the ⌊N_mlp · ratio⌋ largest |G| over all MLP tensors together
  (tensors with larger gradients lose more entries).

Differences from the reference (§13 item 11): boolean masks and a bisection threshold instead of
Python sets of flat indices, masks on the model's device instead of a hard-coded ``.cuda()``, no
unused AdamW optimizer, and only MLP gradients are computed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from memlab.models.edit import Edit
from memlab.unlearn.losses import model_sequence_losses
from memlab.unlearn.registry import METHODS, UnlearnContext
from memlab.unlearn.weight.common import (
    check_ratio,
    device_of,
    global_masks,
    gradients,
    grads_only_for,
    make_edit,
    mlp_parameters,
    per_tensor_masks,
    row_batches,
)


def summed_forget_gradient(
    model: nn.Module, forget: torch.Tensor, batch_size: int, seed: int
) -> dict[str, torch.Tensor]:
    """G = Σ_batches ∇ mean CE(batch) over the MLP parameters (forget batches in order)."""
    params = mlp_parameters(model)
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    with grads_only_for(model, params):
        for batch in row_batches(forget, batch_size, seed, False, device_of(model)):
            for name, g in gradients(model_sequence_losses(model, batch).mean(), params).items():
                total[name] += g
    return total


def durable_edit(
    name: str,
    model: nn.Module,
    forget: torch.Tensor,
    cfg: Any,
    ctx: UnlearnContext,
    aggregate: bool,
) -> Edit:
    ratio = check_ratio(cfg.ratio)
    magnitude = {
        n: g.abs()
        for n, g in summed_forget_gradient(model, forget, cfg.batch_size, ctx.seed).items()
    }
    masks = global_masks(magnitude, ratio) if aggregate else per_tensor_masks(magnitude, ratio)
    return make_edit(name, masks, cfg)


@METHODS.register("durable")
def durable(
    model: nn.Module, forget: torch.Tensor, retain: torch.Tensor, cfg: Any, ctx: UnlearnContext
) -> Edit:
    """Per MLP tensor, zero the ⌊numel · ratio⌋ entries with the largest summed forget gradient."""
    return durable_edit("durable", model, forget, cfg, ctx, aggregate=False)


@METHODS.register("durable_aggregate")
def durable_aggregate(
    model: nn.Module, forget: torch.Tensor, retain: torch.Tensor, cfg: Any, ctx: UnlearnContext
) -> Edit:
    """Zero the ⌊N_mlp · ratio⌋ MLP entries with the largest summed forget gradient, ranked globally."""
    return durable_edit("durable_aggregate", model, forget, cfg, ctx, aggregate=True)
