"""One teacher-forced pass over the scored window of artifact rows, kept per token.

The window and the logit rules are those of the memorization metric
(:func:`memlab.metrics.memorization.greedy_match`): the input is the clean prompt followed by the
artifact continuation, the window holds the ``eval.k`` tokens after the row's start (cut at the row
end), and the EOS logit is suppressed before the argmax — and, here, before the softmax, so the
probabilities are those of sampling under the same rule. Membership inference and extraction read
the per-token results.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from memlab.data.lm_data import ArtifactSet
from memlab.metrics.forward import eval_mode, logits_of, model_device
from memlab.metrics.memorization import scored_inputs


@dataclass
class WindowTokens:
    """Per row and next-token position [n, T−1]; positions outside the window are masked out."""

    window: torch.Tensor  # bool: the position is a scored continuation token
    hit: torch.Tensor  # bool: the argmax is the target token
    logprob: torch.Tensor  # log p(target) under the suppressed-EOS softmax
    mean: torch.Tensor  # E_z[log p(z)] of the next-token distribution (min-k %++)
    std: torch.Tensor  # its standard deviation
    targets: torch.Tensor  # [n, T−1] the target tokens

    @property
    def n(self) -> int:
        return int(self.window.shape[0])

    def leading_hits(self) -> torch.Tensor:
        """Per row, how many window tokens from the start on are predicted greedily [n]."""
        run = torch.cumprod((self.hit | ~self.window).long(), dim=1)
        return (run.bool() & self.window).sum(dim=1)

    def window_len(self) -> torch.Tensor:
        return self.window.sum(dim=1)

    def sequence_logprob(self) -> torch.Tensor:
        """log p of the whole window continuation [n] (sampling at temperature 1)."""
        return torch.where(self.window, self.logprob, torch.zeros_like(self.logprob)).sum(dim=1)


def token_stats(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """log p(target), E[log p] and std[log p] of each next-token distribution (float32)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    prob = logp.exp()
    finite = torch.isfinite(logp)
    logp_f = torch.where(finite, logp, torch.zeros_like(logp))  # p = 0 terms add nothing
    mean = (prob * logp_f).sum(-1)
    var = (prob * logp_f.square()).sum(-1) - mean.square()
    target_logp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return target_logp, mean, var.clamp(min=1e-12).sqrt()


@torch.no_grad()
def window_tokens(
    model: nn.Module, artifact: ArtifactSet, eval_cfg, eos_id: int | None
) -> WindowTokens:
    """Teacher-forced per-token results of ``artifact``'s scored windows (see the module doc)."""
    n, T = artifact.rows.shape
    start = artifact.start if artifact.start is not None else torch.full((n,), eval_cfg.prompt_len)
    inputs = scored_inputs(artifact.rows, artifact.clean, start.long())
    pos = torch.arange(1, T).unsqueeze(0)
    ends = (start.long() + int(eval_cfg.k)).clamp(max=T)
    window = (pos >= start.long().unsqueeze(1)) & (pos < ends.unsqueeze(1))
    suppress = eos_id if eval_cfg.suppress_eos and eos_id is not None else None
    device = model_device(model)
    parts: list[tuple[torch.Tensor, ...]] = []
    with eval_mode(model):
        for lo in range(0, n, int(eval_cfg.batch_size)):
            x = inputs[lo : lo + int(eval_cfg.batch_size)].to(device)
            logits = logits_of(model, x)[:, :-1].float()
            if suppress is not None:
                logits[..., suppress] = float("-inf")
            targets = x[:, 1:]
            hit = logits.argmax(-1) == targets
            parts.append(tuple(t.cpu() for t in (hit, *token_stats(logits, targets))))
    if not parts:  # no rows: empty [0, T−1] results
        empty = torch.zeros(0, T - 1)
        parts.append((empty.bool(), empty, empty, empty))
    hit, logprob, mean, std = (torch.cat(p) for p in zip(*parts, strict=True))
    return WindowTokens(window, hit, logprob, mean, std, inputs[:, 1:])
