"""Per-sequence losses shared by every unlearning method (unlearning spec §5.1).

The reference's ``clm_loss_fn`` shifts logits and inputs, takes token-level cross-entropy and
averages it over all next-token positions (padding included) — one loss per sequence, so methods
can weight forget (+1) and retain (−1) rows inside one batch (Greedy, BalancedSubnet).
:func:`continuation_losses` averages only over the positions that predict the continuation
(targets at ``prompt_len`` and later), the loss MemPi's neuron methods use.
"""

from __future__ import annotations

import torch
from torch import nn

from memlab.metrics.forward import logits_of, token_losses


def sequence_losses(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Per-sequence mean token CE [B] over every next-token position (spec §5.1)."""
    return token_losses(logits, input_ids).mean(dim=1)


def continuation_token_losses(
    logits: torch.Tensor, input_ids: torch.Tensor, prompt_len: int
) -> torch.Tensor:
    """Token CE [B, T−prompt_len] of the continuation targets (tokens ``prompt_len`` … T−1)."""
    if not 1 <= prompt_len < input_ids.shape[1]:
        raise ValueError(f"prompt_len={prompt_len} must be in [1, {input_ids.shape[1] - 1}]")
    return token_losses(logits, input_ids)[:, prompt_len - 1 :]


def continuation_losses(
    logits: torch.Tensor, input_ids: torch.Tensor, prompt_len: int
) -> torch.Tensor:
    """Per-sequence mean CE [B] over the continuation targets only (MemPi's suffix loss)."""
    return continuation_token_losses(logits, input_ids, prompt_len).mean(dim=1)


def model_sequence_losses(
    model: nn.Module, input_ids: torch.Tensor, prompt_len: int | None = None
) -> torch.Tensor:
    """Forward ``model`` on ``input_ids`` and return per-sequence losses [B]: over all positions,
    or over the continuation when ``prompt_len`` is given."""
    logits = logits_of(model, input_ids)
    if prompt_len is None:
        return sequence_losses(logits, input_ids)
    return continuation_losses(logits, input_ids, prompt_len)


def signed_group_loss(losses: torch.Tensor, is_forget: torch.Tensor, alpha: float) -> torch.Tensor:
    """BalancedSubnet's objective −(1−α)·mean_forget ℓ + α·mean_retain ℓ (spec §7.6), with an empty
    group contributing 0 (the reference produced NaN for it, §13 item 13)."""
    forget = losses[is_forget]
    retain = losses[~is_forget]
    zero = losses.sum() * 0.0
    forget_term = forget.mean() if forget.numel() else zero
    retain_term = retain.mean() if retain.numel() else zero
    return -(1.0 - alpha) * forget_term + alpha * retain_term
