"""Greedy (Maini et al. 2023, "Can neural network memorization be localized?"; unlearning spec §7.1).

One MLP entry per iteration: on a shuffled batch mixing forget rows (label +1) and retain rows
(label −1), the objective J = Σ_retain ℓ − Σ_forget ℓ (ℓ = per-sequence mean CE) is
differentiated; the score θ ⊙ ∇J is the first-order decrease of J when θ is set to 0; the single
entry with the largest score over all MLP weights and biases is zeroed, but only if that score is
positive (otherwise the iteration changes nothing).

Iteration count: ⌈ratio · (number of all model parameters)⌉, as in the reference — embeddings and
attention count although only MLP entries are candidates (documented reference behaviour, §13
item 10; on the wikitext model embeddings dominate). ``count: mlp`` uses ⌈ratio · N_mlp⌉ instead.
Differences from the reference: the count is an integer (the reference compared a float), no
per-iteration copy of every gradient is made (only MLP gradients are computed, reduced to one
max per tensor), and gradients of embeddings/attention are not computed at all.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from memlab.models.edit import Edit
from memlab.unlearn.losses import model_sequence_losses
from memlab.unlearn.registry import METHODS, UnlearnContext
from memlab.unlearn.weight.common import (
    check_ratio,
    cycle_batches,
    device_of,
    gradients,
    grads_only_for,
    make_edit,
    mlp_parameters,
)


def iteration_count(model: nn.Module, ratio: float, count: str) -> int:
    """⌈ratio · N⌉ with N = all parameters (``count: all``, reference) or MLP entries (``mlp``)."""
    if count == "all":
        n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    elif count == "mlp":
        n = sum(p.numel() for p in mlp_parameters(model).values())
    else:
        from memlab.errors import ConfigError

        raise ConfigError(f"unlearn.count='{count}' must be all or mlp")
    return math.ceil(check_ratio(ratio) * n - 1e-9)


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


@METHODS.register("greedy")
def greedy(
    model: nn.Module, forget: torch.Tensor, retain: torch.Tensor, cfg: Any, ctx: UnlearnContext
) -> Edit:
    """Zero one positive-score MLP entry per iteration (see the module docstring)."""
    params = mlp_parameters(model)
    n_iter = iteration_count(model, cfg.ratio, cfg.get("count", "all"))
    rows = torch.cat([forget, retain])
    sign = torch.cat([torch.ones(len(forget)), -torch.ones(len(retain))])  # +1 forget, −1 retain
    keep = {n: torch.ones(p.shape, dtype=torch.bool, device=p.device) for n, p in params.items()}
    device = device_of(model)
    cpu = torch.device("cpu")
    batches = cycle_batches(torch.arange(len(rows)), cfg.batch_size, ctx.seed, True, cpu)
    zeroed = 0
    was_training = model.training
    model.eval()  # the reference keeps the model in eval mode
    with grads_only_for(model, params):
        for _ in range(n_iter):
            index = next(batches)
            losses = model_sequence_losses(model, rows[index].to(device))
            objective = -(sign[index].to(device) * losses).sum()  # Σ_retain ℓ − Σ_forget ℓ
            zeroed += zero_best_entry(params, gradients(objective, params), keep)
    model.train(was_training)
    return make_edit("greedy", keep, cfg, iterations=n_iter, zeroed=zeroed)
