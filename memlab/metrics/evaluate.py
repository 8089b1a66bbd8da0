"""All TinyMem metrics of a model in one flat, ``/``-grouped dict.

Names: ``mem/perc`` (% of evaluable artifact rows reproduced exactly; for backdoors the attack
success rate on held-out triggered rows), ``mem/perc_clean`` (% reproducing the clean continuation),
``mem/n_eval``, the same per duplication group with suffix ``/dup{g}``; ``util/acc/<dist>`` (%),
``util/acc_ref/<dist>``, ``util/loss/<dist>``, ``util/ppl/<dist>``, ``util/ppl_ref/<dist>``,
``util/acc_mean`` and ``util/ppl`` (first test set).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from memlab.data.lm_data import ArtifactSet, LMData
from memlab.errors import ConfigError
from memlab.metrics.memorization import evaluable, greedy_match, scored_inputs
from memlab.metrics.utility import lm_utility


@dataclass
class MemorizationResult:
    """Verdicts for one artifact set: which rows were evaluable, memorized, clean-correct."""

    evaluable: torch.Tensor
    memorized: torch.Tensor
    clean_correct: torch.Tensor

    def metrics(self, suffix: str = "") -> dict[str, float]:
        n = int(self.evaluable.sum())
        pct = (lambda v: 100.0 * int((v & self.evaluable).sum()) / n) if n else (lambda v: 0.0)
        return {
            f"mem/perc{suffix}": pct(self.memorized),
            f"mem/perc_clean{suffix}": pct(self.clean_correct),
            f"mem/n_eval{suffix}": float(n),
        }


def check_windows(prompt_len: int, k: int, max_ctx: int) -> None:
    if prompt_len < 1 or k < 1 or prompt_len + k > max_ctx:
        raise ConfigError(
            f"eval.prompt_len={prompt_len} + eval.k={k} must be ≤ the context length {max_ctx} "
            "(both ≥ 1)"
        )


def memorization(
    model: nn.Module, artifact: ArtifactSet, eval_cfg, eos_id: int | None
) -> MemorizationResult:
    """Exact-match verdicts for every row of ``artifact`` (teacher-forced, one pass per batch)."""
    n, T = artifact.rows.shape
    check_windows(eval_cfg.prompt_len, eval_cfg.k, T)
    start = artifact.start if artifact.start is not None else torch.full((n,), eval_cfg.prompt_len)
    suppress = [eos_id] if eval_cfg.suppress_eos and eos_id is not None else []
    bs = eval_cfg.batch_size
    inputs = scored_inputs(artifact.rows, artifact.clean, start)
    scored = (
        torch.ones(n, dtype=torch.bool)
        if artifact.kind == "natural"  # naturally memorized sequences: every row counts (Pythia)
        else evaluable(artifact.rows, artifact.clean, start=start, k=eval_cfg.k)
    )
    return MemorizationResult(
        scored,
        greedy_match(model, inputs, start, eval_cfg.k, suppress, bs),
        greedy_match(model, artifact.clean, start, eval_cfg.k, suppress, bs),
    )


def memorization_metrics(
    model: nn.Module, data: LMData, eval_cfg
) -> tuple[dict[str, float], MemorizationResult | None]:
    """Overall and per-duplication-group memorization of the data's memorization set."""
    target = data.memorization_set()
    if target is None:
        return {}, None
    result = memorization(model, target, eval_cfg, data.eos_id)
    metrics = result.metrics()
    if len(target.groups) > 1:
        for g, idx in enumerate(target.groups):
            part = MemorizationResult(
                result.evaluable[idx], result.memorized[idx], result.clean_correct[idx]
            )
            metrics.update(part.metrics(f"/dup{g}"))
    return metrics, result


def utility_metrics(model: nn.Module, data: LMData, eval_cfg) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for name, rows in data.test.items():
        u = lm_utility(model, rows, data.pad_id, batch_size=eval_cfg.batch_size)
        metrics[f"util/acc/{name}"] = 100.0 * u["acc"]
        metrics[f"util/acc_ref/{name}"] = 100.0 * u["acc_ref"]
        metrics[f"util/loss/{name}"] = u["loss"]
        metrics[f"util/ppl/{name}"] = u["ppl"]
        metrics[f"util/ppl_ref/{name}"] = u["ppl_ref"]
    names = list(data.test)
    if names:
        metrics["util/acc_mean"] = sum(metrics[f"util/acc/{n}"] for n in names) / len(names)
        metrics["util/acc_ref_mean"] = sum(metrics[f"util/acc_ref/{n}"] for n in names) / len(names)
        metrics["util/ppl"] = metrics[f"util/ppl/{names[0]}"]
        metrics["util/ppl_ref"] = metrics[f"util/ppl_ref/{names[0]}"]
    return metrics


def evaluate_model(
    model: nn.Module, data: LMData, eval_cfg
) -> tuple[dict[str, float], MemorizationResult | None]:
    """Memorization + utility metrics of ``model`` on ``data``."""
    mem, result = memorization_metrics(model, data, eval_cfg)
    return {**mem, **utility_metrics(model, data, eval_cfg)}, result
