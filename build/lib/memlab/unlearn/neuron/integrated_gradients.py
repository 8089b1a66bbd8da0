"""Integrated Gradients / knowledge neurons (Dai et al. 2022, as used by Chang et al. 2024,
MemPi; unlearning spec §6.5, §15 IG).

For a forget row x, layer l and a continuation-predicting position i (prompt_len−1 … L−2), let a
be the FFN activation of layer l at i. IG_i = a ⊙ (1/m) Σ_s ∂p(x[i+1] | x[≤i]; a·α_s)/∂(a·α_s),
α_s = 0, 1/(m−1), …, 1 (baseline 0, m = ``steps``), where the scaled activation is injected at
position i of layer l. score[l] = mean over positions and rows of IG_i.

Batching: every (row, position, step) triple is one row of a forward pass over the row's tokens
up to i; because attention is causal, the logits at i equal those of the prefix x[:i+1] with the
activation replaced at its last position (the reference's formulation), so triples with different
positions share one pass. ``batch_size`` triples go through each forward/backward.

Differences from the reference (§13 item 6): ``steps`` is honoured (the reference hard-coded 20),
the prompt length comes from the evaluation config (or ``prompt_len``) instead of a fixed 50
(wrong for Pythia's 32), and the rows are the forget set the runner passes (the reference always
used its memorized set, whatever forget set was selected).
"""

from __future__ import annotations

import torch
from torch import nn

from memlab.metrics.forward import logits_of
from memlab.models.mlp_adapter import MLPAdapter
from memlab.unlearn.neuron.base import neuron_method, plain, prompt_len
from memlab.unlearn.neuron.forward import frozen, row_batches
from memlab.unlearn.neuron.patching import capture, patched, replace_at
from memlab.unlearn.registry import UnlearnContext


def captured_activations(model: nn.Module, adapter: MLPAdapter, x: torch.Tensor) -> list:
    """Every layer's FFN activations [B, T, inner] for ``x`` (one forward, no gradients)."""
    acts: list = [None] * adapter.n_layer

    def keep(layer: int):
        return lambda act: acts.__setitem__(layer, act.detach())

    with torch.no_grad(), patched(adapter, {i: capture(keep(i)) for i in range(adapter.n_layer)}):
        model(input_ids=x)
    return acts


def triples(n_rows: int, first: int, last: int, steps: int) -> torch.Tensor:
    """All (row, position, step) triples [N, 3], sorted by position (similar prefix lengths)."""
    rows, pos, step = torch.meshgrid(
        torch.arange(n_rows), torch.arange(first, last + 1), torch.arange(steps), indexing="ij"
    )
    flat = torch.stack([rows.reshape(-1), pos.reshape(-1), step.reshape(-1)], dim=1)
    return flat[flat[:, 1].argsort(stable=True)]


def layer_ig_sum(
    model: nn.Module,
    adapter: MLPAdapter,
    layer: int,
    x: torch.Tensor,
    act: torch.Tensor,
    plan: torch.Tensor,
    alphas: torch.Tensor,
    batch_size: int,
) -> torch.Tensor:
    """Σ over the triples of ``plan`` of a ⊙ ∂p/∂(injected activation), [inner]."""
    total = torch.zeros(act.shape[-1], device=act.device, dtype=torch.float32)
    for chunk in plan.to(x.device).split(batch_size):
        row, pos, step = chunk.unbind(1)
        width = int(pos.max()) + 1
        a = act[row, pos].float()  # [N, inner]
        injected = (a * alphas[step, None]).requires_grad_(True)
        with patched(adapter, {layer: replace_at(pos, injected)}):
            logits = logits_of(model, x[row, :width])
        n = torch.arange(chunk.shape[0], device=x.device)
        probs = logits[n, pos].float().softmax(-1)[n, x[row, pos + 1]]
        (grad,) = torch.autograd.grad(probs.sum(), injected)
        total += (a * grad).sum(0)
    return total


@neuron_method("integrated_gradients")
def integrated_gradient_scores(
    model: nn.Module, forget: torch.Tensor, cfg, ctx: UnlearnContext
) -> torch.Tensor:
    """Mean integrated gradients of p(next token) w.r.t. each FFN unit, [n_layer, inner]."""
    hp = plain(cfg)
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
        for x in row_batches(forget, hp["rows_per_pass"], device):
            acts = captured_activations(model, adapter, x)
            plan = triples(x.shape[0], first, last, steps)
            for layer in range(adapter.n_layer):
                ig = layer_ig_sum(
                    model, adapter, layer, x, acts[layer], plan, alphas, hp["batch_size"]
                )
                scores[layer] += ig.cpu()
    return scores / (forget.shape[0] * (last - first + 1) * steps)
