"""Durable and Durable Aggregate (new in the paper; gradient-magnitude masking after Neurotoxin,
Zhang et al. 2022): zero the MLP entries the memorized sequences pull on hardest.

G = Σ over forget batches (in order) of ∇(batch-mean token CE) — the summed gradient of the
forget loss. The MLP entries (weights and biases) with the largest |G| are zeroed:

- ``durable``: per tensor, its ⌊numel · ratio⌋ largest |G| ("layer-wise" ranking);
- ``durable_aggregate``: globally, the ⌊N_mlp · ratio⌋ largest |G| over all MLP tensors together
  (tensors with larger gradients lose more entries).

Differences from the reference: deviations.md D44.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from memlab.metrics.forward import model_device
from memlab.models.edit import Edit
from memlab.unlearn.common import (
    UnlearnContext,
    count_of,
    gradients,
    make_edit,
    mlp_parameters,
    per_tensor_masks,
    row_batches,
    sequence_losses,
    trainable_only,
)


def summed_forget_gradient(
    model: nn.Module, forget: torch.Tensor, batch_size: int
) -> dict[str, torch.Tensor]:
    """G = Σ_batches ∇ mean CE(batch) over the MLP parameters (forget batches in order)."""
    params = mlp_parameters(model)
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    with trainable_only(model, params.values()):
        for batch in row_batches(forget, batch_size, model_device(model)):
            for name, g in gradients(sequence_losses(model, batch).mean(), params).items():
                total[name] += g
    return total


def kth_largest_nonnegative(scores: dict[str, torch.Tensor], k: int) -> torch.Tensor:
    """The k-th largest value over all tensors of non-negative float scores, found by bisection
    over their float32 bit patterns (which order like the values for x ≥ 0): 31 counting passes,
    no concatenation of all scores (a 6.9B Pythia has 4.3e9 MLP entries)."""
    bits = {
        n: s.detach().float().clamp(min=0).contiguous().view(torch.int32) for n, s in scores.items()
    }
    lo, hi = 0, 2**31 - 1  # invariant: count(bits >= lo) >= k > count(bits >= hi + 1)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        count = sum(int((b >= mid).sum()) for b in bits.values())
        if count >= k:
            lo = mid
        else:
            hi = mid - 1
    return torch.tensor(lo, dtype=torch.int32).view(torch.float32)


def global_masks(scores: dict[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """The ⌊N · ratio⌋ largest non-negative scores over all tensors together are dropped. Ties at
    the threshold are broken by tensor order, then flat position, so exactly that many entries are
    dropped."""
    total = sum(s.numel() for s in scores.values())
    k = count_of(total, ratio)
    if k == 0:
        return {n: torch.ones(s.shape, dtype=torch.bool) for n, s in scores.items()}
    threshold = float(kth_largest_nonnegative(scores, k))
    drop = {n: s.detach().float().clamp(min=0) > threshold for n, s in scores.items()}
    remaining = k - sum(int(d.sum()) for d in drop.values())
    for name, s in scores.items():
        if remaining <= 0:
            break
        ties = (s.detach().float().clamp(min=0) == threshold).reshape(-1).nonzero().squeeze(1)
        take = ties[:remaining]
        drop[name].view(-1)[take] = True
        remaining -= int(take.numel())
    return {n: (~d).cpu() for n, d in drop.items()}


def gradient_magnitude(model: nn.Module, forget: torch.Tensor, cfg: Any) -> dict[str, torch.Tensor]:
    return {n: g.abs() for n, g in summed_forget_gradient(model, forget, cfg.batch_size).items()}


def durable(
    model: nn.Module, forget: torch.Tensor, retain: torch.Tensor, cfg: Any, ctx: UnlearnContext
) -> Edit:
    """Per MLP tensor, zero the ⌊numel · ratio⌋ entries with the largest summed forget gradient."""
    masks = per_tensor_masks(gradient_magnitude(model, forget, cfg), float(cfg.ratio))
    return make_edit("durable", masks, cfg)


def durable_aggregate(
    model: nn.Module, forget: torch.Tensor, retain: torch.Tensor, cfg: Any, ctx: UnlearnContext
) -> Edit:
    """Zero the ⌊N_mlp · ratio⌋ MLP entries with the largest summed forget gradient, ranked globally."""
    masks = global_masks(gradient_magnitude(model, forget, cfg), float(cfg.ratio))
    return make_edit("durable_aggregate", masks, cfg)
