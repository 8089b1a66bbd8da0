"""Utility: teacher-forced next-token accuracy, loss and perplexity.

Each metric exists in two definitions:
- ``ref``: the reference's — every position counts (padding included, deviations.md D17), and the value is the
  unweighted mean over batches (perplexity = mean of per-batch exp(loss), deviations.md D17);
- corrected (the default name): pad-masked and token-weighted; perplexity = exp(mean token CE).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from memlab.metrics.forward import eval_mode, logits_of, model_device, token_losses
from memlab.metrics.shards import shards_for


def valid_targets(rows: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Mask [B, T−1] of next-token targets that lie before the row's trailing padding."""
    is_pad = rows == pad_id
    trailing = torch.flip(torch.cumprod(torch.flip(is_pad, [1]).long(), dim=1), [1]).bool()
    return ~trailing[:, 1:]


def lm_utility(
    model: nn.Module, rows: torch.Tensor, pad_id: int, *, batch_size: int = 512
) -> dict[str, float]:
    """Accuracy (fractions), loss and perplexity of ``rows`` in both definitions. Across ranks
    each scores its shard of the batches and the per-batch sums are gathered
    (:mod:`memlab.metrics.shards`)."""
    shards = shards_for(model, rows.shape[0], batch_size)
    per_batch = [
        batch_sums(model, rows[lo : lo + batch_size], pad_id) for lo in shards.batch_starts()
    ]
    local = torch.tensor(per_batch, dtype=torch.float64).reshape(-1, len(BATCH_SUMS))
    ref_acc, ref_ppl, ref_loss = [], [], []
    hits = nll = count = 0.0
    for acc_ref, loss_ref, ppl_ref, batch_hits, batch_nll, batch_count in shards.gather_batches(
        local
    ).tolist():
        ref_acc.append(acc_ref)
        ref_loss.append(loss_ref)
        ref_ppl.append(ppl_ref)
        hits += batch_hits
        nll += batch_nll
        count += batch_count
    count = max(count, 1.0)
    return {
        "acc": hits / count,
        "loss": nll / count,
        "ppl": math.exp(nll / count),
        "acc_ref": sum(ref_acc) / len(ref_acc),
        "loss_ref": sum(ref_loss) / len(ref_loss),
        "ppl_ref": sum(ref_ppl) / len(ref_ppl),
    }


BATCH_SUMS = ("acc_ref", "loss_ref", "ppl_ref", "hits", "nll", "count")


def batch_sums(model: nn.Module, rows: torch.Tensor, pad_id: int) -> list[float]:
    """One batch's values, in the order of ``BATCH_SUMS``: the reference's per-batch means (every
    position counts) and the pad-masked sums of hits, cross-entropy and targets."""
    with eval_mode(model):
        x = rows.to(model_device(model))
        logits = logits_of(model, x)
        ce = token_losses(logits, x)
        correct = (logits[:, :-1].argmax(-1) == x[:, 1:]).float()
        mask = valid_targets(x, pad_id).float()
        return [
            correct.mean().item(),
            ce.mean().item(),
            math.exp(ce.mean().item()),
            (correct * mask).sum().item(),
            (ce * mask).sum().item(),
            mask.sum().item(),
        ]
