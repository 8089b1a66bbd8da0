"""Extraction curves from one teacher-forced pass over the memorization set.

- ``audit/extract/k<k>/perc``: % of evaluable rows whose first ``k`` continuation tokens greedy
  decoding reproduces, for every k up to the window (``eval.k``). At k = window this is exactly
  ``mem/perc`` (same rows, prompts and logit rules); smaller k shows partial extraction that the
  exact-match metric calls "forgotten".
- ``audit/extract/prob_ge_<p>/perc``: % of evaluable rows whose exact continuation has probability
  ≥ p under sampling at temperature 1 — (n, p)-discoverable extraction (Hayes et al. 2024): with
  n samples such a row comes out at least once with probability 1 − (1 − p)^n.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from memlab.audit.window import window_tokens
from memlab.data.lm_data import ArtifactSet
from memlab.metrics.memorization import evaluable


def probability_label(p: float) -> str:
    """``1e-1`` for 0.1: the short scientific form used in metric names."""
    mantissa, exponent = f"{p:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def scored_rows(artifact: ArtifactSet, prompt_len: int, k: int) -> ArtifactSet:
    """The rows the memorization metric counts (naturally memorized sets: every row)."""
    if artifact.kind == "natural":
        return artifact
    n = len(artifact)
    start = artifact.start if artifact.start is not None else torch.full((n,), prompt_len)
    keep = evaluable(artifact.rows, artifact.clean, start=start, k=k)
    return artifact.subset(keep.nonzero().squeeze(1))


def extraction_curves(
    model: nn.Module, artifact: ArtifactSet, eval_cfg, eos_id: int | None, probs: list[float]
) -> dict[str, float]:
    """The extraction keys for ``artifact`` (the data's memorization set)."""
    rows = scored_rows(artifact, int(eval_cfg.prompt_len), int(eval_cfg.k))
    tokens = window_tokens(model, rows, eval_cfg, eos_id)
    n = max(tokens.n, 1)
    leading, width = tokens.leading_hits(), tokens.window_len()
    out = {}
    for k in range(1, int(eval_cfg.k) + 1):
        reached = leading >= width.clamp(max=k)
        out[f"audit/extract/k{k}/perc"] = 100.0 * int(reached.sum()) / n
    logprob = tokens.sequence_logprob()
    for p in probs:
        share = int((logprob >= math.log(p)).sum()) / n
        out[f"audit/extract/prob_ge_{probability_label(p)}/perc"] = 100.0 * share
    return out
