"""Greedy (Maini et al. 2023, "Can neural network memorization be localized?"): zero, one at a
time, the MLP entries whose removal most raises the forget loss relative to the retain loss.

Per iteration, on a shuffled batch mixing forget rows (label +1) and retain rows (label −1), the
objective J = Σ_retain ℓ − Σ_forget ℓ (ℓ = per-sequence mean CE) is differentiated; the score
θ ⊙ ∇J is the first-order decrease of J when θ is set to 0; the single entry with the largest
score over all MLP weights and biases is zeroed, but only if that score is positive (otherwise the
iteration changes nothing). The model stays in eval mode, as in the reference.

Iteration count: ⌈ratio · (number of all model parameters)⌉, as in the reference
(``count: all``; ``count: mlp`` uses ⌈ratio · N_mlp⌉). Differences: deviations.md D43.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from memlab.errors import ConfigError
from memlab.metrics.forward import model_device
from memlab.models.edit import Edit
from memlab.unlearn.common import (
    UnlearnContext,
    gradients,
    make_edit,
    mlp_parameters,
    row_batches,
    sequence_losses,
    trainable_only,
)

COUNTS = ("all", "mlp")


def iteration_count(model: nn.Module, ratio: float, count: str) -> int:
    """⌈ratio · N⌉ with N = all parameters (``count: all``, reference) or MLP entries (``mlp``)."""
    if count == "all":
        n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    elif count == "mlp":
        n = sum(p.numel() for p in mlp_parameters(model).values())
    else:
        raise ConfigError(f"unlearn.count={count}: unknown; allowed: {', '.join(COUNTS)}")
    return math.ceil(float(ratio) * n - 1e-9)


def best_entry(
    params: dict[str, nn.Parameter], grads: dict[str, torch.Tensor]
) -> tuple[str, int, float]:
    """(tensor name, flat index, score) of the largest θ ⊙ g over all tensors."""
    best = ("", -1, -math.inf)
    for name, p in params.items():
        score = (p.detach() * grads[name]).reshape(-1)
        value, index = score.max(dim=0)
        if float(value) > best[2]:
            best = (name, int(index), float(value))
    return best


@torch.no_grad()
def zero_best_entry(
    params: dict[str, nn.Parameter], grads: dict[str, torch.Tensor], keep: dict[str, torch.Tensor]
) -> bool:
    """One Greedy step: zero the entry with the largest θ ⊙ g if that score is positive (and mark
    it in ``keep``); returns whether an entry was zeroed."""
    name, flat, score = best_entry(params, grads)
    if not score > 0:
        return False
    params[name].view(-1)[flat] = 0
    keep[name].view(-1)[flat] = False
    return True


def greedy(
    model: nn.Module, forget: torch.Tensor, retain: torch.Tensor, cfg: Any, ctx: UnlearnContext
) -> Edit:
    """Zero one positive-score MLP entry per iteration (see the module docstring)."""
    params = mlp_parameters(model)
    n_iter = iteration_count(model, cfg.ratio, cfg.get("count", "all"))
    rows = torch.cat([forget, retain])
    sign = torch.cat([torch.ones(len(forget)), -torch.ones(len(retain))])  # +1 forget, −1 retain
    keep = {n: torch.ones(p.shape, dtype=torch.bool, device=p.device) for n, p in params.items()}
    device = model_device(model)
    batches = row_batches(
        torch.arange(len(rows)),
        cfg.batch_size,
        torch.device("cpu"),
        seed=ctx.seed,
        shuffle=True,
        endless=True,
    )
    zeroed = 0
    was_training = model.training
    model.eval()
    with trainable_only(model, params.values()):
        for _ in range(n_iter):
            index = next(batches)
            losses = sequence_losses(model, rows[index].to(device))
            objective = -(sign[index].to(device) * losses).sum()  # Σ_retain ℓ − Σ_forget ℓ
            zeroed += zero_best_entry(params, gradients(objective, params), keep)
    model.train(was_training)
    return make_edit("greedy", keep, cfg, iterations=n_iter, zeroed=zeroed)
