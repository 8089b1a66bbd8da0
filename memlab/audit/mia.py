"""Membership inference with exact membership: forget rows (members) against artifact rows of the
same generator that were never trained on (non-members).

Four attacks score each row on its scored window (higher = "member"):

- ``loss``: minus the mean token NLL (Yeom et al. 2018);
- ``zlib``: minus the NLL sum divided by the zlib-compressed length of the window's token ids
  (Carlini et al. 2021);
- ``min_k``: mean log-probability of the k % least likely window tokens (Min-K % Prob, Shi et al.
  2024);
- ``min_k_plus``: the same over tokens standardised by the mean and standard deviation of the
  log-probability under the model's next-token distribution (Min-K %++, Zhang et al. 2025).

Reported: ROC AUC and the true-positive rate at 1 % false positives (``audit/mia/<attack>/auc``,
``.../tpr_at_1fpr``). An AUC near 0.5 means members look like rows never trained on (the
retrained-without-them ideal); an AUC well below 0.5 means the forget rows now look *less* likely
than unseen rows — the mitigation over-unlearned them, which is itself a membership signal.
"""

from __future__ import annotations

import logging
import math
import zlib

import torch
from torch import nn

from memlab.audit.window import WindowTokens, window_tokens
from memlab.data.lm_data import ArtifactSet

log = logging.getLogger(__name__)

ATTACKS = ("loss", "zlib", "min_k", "min_k_plus")


def lowest_share_mean(values: torch.Tensor, window: torch.Tensor, share: float) -> torch.Tensor:
    """Per row, the mean of the ``share`` smallest ``values`` inside the window [n]."""
    masked = torch.where(window, values, torch.full_like(values, float("inf")))
    ordered = masked.sort(dim=1).values
    count = (window.sum(dim=1).float() * share).ceil().clamp(min=1).long()
    take = torch.arange(values.shape[1]).unsqueeze(0) < count.unsqueeze(1)
    return torch.where(take, ordered, torch.zeros_like(ordered)).sum(dim=1) / count


def zlib_lengths(tokens: WindowTokens) -> torch.Tensor:
    """Compressed length (bytes) of each row's window token ids written as text [n]."""
    lengths = []
    for targets, window in zip(tokens.targets, tokens.window, strict=True):
        text = " ".join(map(str, targets[window].tolist())).encode()
        lengths.append(len(zlib.compress(text)))
    return torch.tensor(lengths, dtype=torch.float32)


def attack_scores(tokens: WindowTokens, min_k: float) -> dict[str, torch.Tensor]:
    """The four attacks' membership scores of every row."""
    window = tokens.window
    logprob = torch.where(window, tokens.logprob, torch.zeros_like(tokens.logprob))
    nll_sum = -logprob.sum(dim=1)
    standardized = (tokens.logprob - tokens.mean) / tokens.std
    return {
        "loss": -nll_sum / window.sum(dim=1).clamp(min=1),
        "zlib": -nll_sum / zlib_lengths(tokens),
        "min_k": lowest_share_mean(tokens.logprob, window, min_k),
        "min_k_plus": lowest_share_mean(standardized, window, min_k),
    }


def auc_and_tpr(member: torch.Tensor, nonmember: torch.Tensor, fpr: float) -> tuple[float, float]:
    """ROC AUC of the scores and the best TPR at a false-positive rate ≤ ``fpr``."""
    from sklearn.metrics import roc_auc_score, roc_curve

    labels = [1] * len(member) + [0] * len(nonmember)
    scores = torch.cat([member, nonmember]).nan_to_num(neginf=-1e30, posinf=1e30).double()
    auc = float(roc_auc_score(labels, scores.numpy()))
    fprs, tprs, _ = roc_curve(labels, scores.numpy())
    return auc, float(tprs[fprs <= fpr].max())


def nonmember_sample(pool: ArtifactSet, n: int, seed: int) -> ArtifactSet:
    """``n`` rows of ``pool`` (all of them when it holds fewer), drawn with ``seed``."""
    if len(pool) <= n:
        return pool
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))
    return pool.subset(order[:n].sort().values)


def membership_inference(
    model: nn.Module,
    members: ArtifactSet,
    nonmembers: ArtifactSet | None,
    eval_cfg,
    *,
    eos_id: int | None,
    mia_cfg,
) -> dict[str, float]:
    """AUC and TPR at ``mia.fpr`` of every attack (``audit/mia/...``); NaN without both classes."""
    if nonmembers is None or len(members) == 0 or len(nonmembers) == 0:
        return {f"audit/mia/{a}/{m}": math.nan for a in ATTACKS for m in ("auc", "tpr_at_1fpr")}
    scores_in = attack_scores(window_tokens(model, members, eval_cfg, eos_id), mia_cfg.min_k)
    scores_out = attack_scores(window_tokens(model, nonmembers, eval_cfg, eos_id), mia_cfg.min_k)
    out = {}
    for attack in ATTACKS:
        auc, tpr = auc_and_tpr(scores_in[attack], scores_out[attack], float(mia_cfg.fpr))
        out[f"audit/mia/{attack}/auc"], out[f"audit/mia/{attack}/tpr_at_1fpr"] = auc, tpr
        if auc < float(mia_cfg.over_unlearning_below):
            log.warning(
                "MIA %s AUC %.3f < %.2f: the forget rows look less likely than rows never trained "
                "on (over-unlearning, docs/audit.md)",
                attack,
                auc,
                float(mia_cfg.over_unlearning_below),
            )
    return out
