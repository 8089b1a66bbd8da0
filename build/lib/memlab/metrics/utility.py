"""Utility: teacher-forced next-token accuracy, loss and perplexity (spec §10.3–§10.4).

Each metric exists in two definitions:
- ``ref``: the reference's — every position counts (padding included, Q12), and the value is the
  unweighted mean over batches (perplexity = mean of per-batch exp(loss), Q13);
- corrected (the default name): pad-masked and token-weighted; perplexity = exp(mean token CE).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from memlab.metrics.forward import eval_mode, logits_of, model_device, token_losses


def valid_targets(rows: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Mask [B, T−1] of next-token targets that lie before the row's trailing padding."""
    is_pad = rows == pad_id
    trailing = torch.flip(torch.cumprod(torch.flip(is_pad, [1]).long(), dim=1), [1]).bool()
    return ~trailing[:, 1:]


def lm_utility(
    model: nn.Module, rows: torch.Tensor, pad_id: int, batch_size: int = 512
) -> dict[str, float]:
    """Accuracy (fractions), loss and perplexity of ``rows`` in both definitions."""
    device = model_device(model)
    ref_acc, ref_ppl, ref_loss = [], [], []
    hits = nll = count = 0.0
    with eval_mode(model):
        for lo in range(0, rows.shape[0], batch_size):
            x = rows[lo : lo + batch_size].to(device)
            logits = logits_of(model, x)
            target = x[:, 1:]
            ce = token_losses(logits, x)
            logits = logits[:, :-1]
            correct = (logits.argmax(-1) == target).float()
            mask = valid_targets(x, pad_id).float()
            ref_acc.append(correct.mean().item())
            ref_loss.append(ce.mean().item())
            ref_ppl.append(math.exp(ce.mean().item()))
            hits += (correct * mask).sum().item()
            nll += (ce * mask).sum().item()
            count += mask.sum().item()
    count = max(count, 1.0)
    return {
        "acc": hits / count,
        "loss": nll / count,
        "ppl": math.exp(nll / count),
        "acc_ref": sum(ref_acc) / len(ref_acc),
        "loss_ref": sum(ref_loss) / len(ref_loss),
        "ppl_ref": sum(ref_ppl) / len(ref_ppl),
    }
