"""Integrated Gradients / knowledge neurons (Dai et al. 2022, as used by Chang et al. 2024,
MemPi): silence the units whose activations most raise the probability of the memorized next
tokens, integrated from a zero activation to the actual one.

For a forget row x, layer l and a continuation-predicting position i (prompt_len−1 … L−2), let a
be the FFN activation of layer l at i. IG_i = a ⊙ (1/m) Σ_s ∂p(x[i+1] | x[≤i]; a·α_s)/∂(a·α_s),
α_s = 0, 1/(m−1), …, 1 (baseline 0, m = ``steps``), where the scaled activation is injected at
the last position of the prefix x[:i+1] (the reference's formulation). score[l] = mean over
positions and rows of IG_i.

Batching: ``batch_size`` forget rows at a time (deviations.md D39); one forward/backward pass
covers those rows at one position with all m steps (only the last position's logits are
computed). Differences from the reference: deviations.md D38.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from memlab.metrics.forward import logits_of
from memlab.models.edit import Edit
from memlab.models.mlp_adapter import MLPAdapter
from memlab.unlearn.common import UnlearnContext, frozen, hparams_of, row_batches
from memlab.unlearn.neurons import attribute_and_ablate, capture, patched, prompt_len, replace_at


def captured_activations(model: nn.Module, adapter: MLPAdapter, x: torch.Tensor) -> list:
    """Every layer's FFN activations [B, T, inner] for ``x`` (one forward, no gradients)."""
    acts: list = [None] * adapter.n_layer

    def keep(layer: int):
        return lambda act: acts.__setitem__(layer, act.detach())

    with torch.no_grad(), patched(adapter, {i: capture(keep(i)) for i in range(adapter.n_layer)}):
        model(input_ids=x)
    return acts


def last_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Next-token logits [B, V] at the last position of ``x`` (HF models compute only those)."""
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        return model(input_ids=x, logits_to_keep=1).logits[:, -1]
    return logits_of(model, x)[:, -1]


def position_ig_sum(
    model: nn.Module,
    adapter: MLPAdapter,
    *,
    layer: int,
    x: torch.Tensor,
    act: torch.Tensor,
    pos: int,
    alphas: torch.Tensor,
) -> torch.Tensor:
    """Σ over the rows of ``x`` and the steps of a ⊙ ∂p/∂(injected activation) at ``pos``, [inner]."""
    steps = alphas.numel()
    a = act[:, pos].float().repeat_interleave(steps, dim=0)  # [B·m, inner]
    injected = (a * alphas.repeat(x.shape[0])[:, None]).requires_grad_(True)
    prefix = x[:, : pos + 1].repeat_interleave(steps, dim=0)
    at_last = torch.full((prefix.shape[0],), pos, device=x.device)
    with patched(adapter, {layer: replace_at(at_last, injected)}):
        logits = last_logits(model, prefix)
    target = x[:, pos + 1].repeat_interleave(steps)
    probs = logits.float().softmax(-1).gather(1, target[:, None])
    (grad,) = torch.autograd.grad(probs.sum(), injected)
    return (a * grad).sum(0)


def integrated_gradient_scores(
    model: nn.Module, forget: torch.Tensor, cfg: Any, ctx: UnlearnContext
) -> torch.Tensor:
    """Mean integrated gradients of p(next token) w.r.t. each FFN unit, [n_layer, inner]."""
    hp = hparams_of(cfg)
    steps = int(hp["steps"])
    first, last = prompt_len(hp, ctx) - 1, forget.shape[1] - 2
    adapter = MLPAdapter(model)
    scores = torch.zeros(adapter.n_layer, adapter.inner)
    with frozen(model) as device:
        alphas = (
            torch.linspace(0.0, 1.0, steps, device=device)
            if steps > 1
            else torch.ones(1, device=device)
        )
        for x in row_batches(forget, hp["batch_size"], device):
            acts = captured_activations(model, adapter, x)
            for layer in range(adapter.n_layer):
                for pos in range(first, last + 1):
                    ig = position_ig_sum(
                        model, adapter, layer=layer, x=x, act=acts[layer], pos=pos, alphas=alphas
                    )
                    scores[layer] += ig.cpu()
    return scores / (forget.shape[0] * (last - first + 1) * steps)


def integrated_gradients(
    model: nn.Module, forget: torch.Tensor, retain: torch.Tensor, cfg: Any, ctx: UnlearnContext
) -> Edit:
    """Silence the units with the largest mean integrated gradient."""
    return attribute_and_ablate(
        "integrated_gradients", integrated_gradient_scores, model, forget, cfg, ctx
    )
