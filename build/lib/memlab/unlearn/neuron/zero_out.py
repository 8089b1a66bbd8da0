"""Zero-Out (Chang et al. 2024, MemPi; unlearning spec §6.1, §15 ZERO_OUT).

score[l, j] = continuation loss on the forget set with unit j of layer l dropped − the loss of
the intact model: units whose removal hurts the memorized continuations most are the ones to
ablate. Dropping is done for a chunk of units at once: the forget batch is repeated once per unit
and each copy gets its own coefficient row (all ones, 0 at its unit), so one forward pass scores
``unit_chunk`` units.

Differences from the reference (§13 item 1): the reference's coefficient vector was inverted (all
zeros with a 1 at j — it kept only unit j and silenced the rest of the layer), its loss covered the
whole sequence instead of the continuation (positions ≥ prompt_len), and it ignored its
``n_batches``/``prompt_len`` arguments. ``compat: reference`` restores the inverted mask and the
whole-sequence loss.
"""

from __future__ import annotations

import torch
from torch import nn

from memlab.models.mlp_adapter import MLPAdapter
from memlab.unlearn.losses import model_sequence_losses
from memlab.unlearn.neuron.base import neuron_method, plain
from memlab.unlearn.neuron.forward import frozen, row_batches
from memlab.unlearn.neuron.patching import patched, scale
from memlab.unlearn.registry import UnlearnContext


def unit_coefficients(inner: int, units: torch.Tensor, inverted: bool) -> torch.Tensor:
    """[len(units), inner]: row c drops unit ``units[c]`` (all ones, 0 there); ``inverted`` keeps
    only that unit (the reference's mask)."""
    rows = torch.arange(units.numel())
    coef = torch.zeros if inverted else torch.ones
    out = coef(units.numel(), inner)
    out[rows, units] = 1.0 if inverted else 0.0
    return out


@torch.no_grad()
def dropped_losses(
    model: nn.Module,
    adapter: MLPAdapter,
    layer: int,
    units: torch.Tensor,
    forget: torch.Tensor,
    start: int | None,
    batch_size: int,
    inverted: bool,
) -> torch.Tensor:
    """Mean forget-set loss [len(units)] with each of ``units`` of ``layer`` dropped in turn."""
    device = units.device
    coef = unit_coefficients(adapter.inner, units.cpu(), inverted).to(device)
    total = torch.zeros(units.numel(), device=device)
    for x in row_batches(forget, batch_size, device):
        per_row = coef.repeat_interleave(x.shape[0], dim=0)  # copy c of the batch drops unit c
        with patched(adapter, {layer: scale(per_row)}):
            losses = model_sequence_losses(model, x.repeat(units.numel(), 1), start)
        total += losses.view(units.numel(), x.shape[0]).sum(1)
    return total / forget.shape[0]


@neuron_method("zero_out")
def zero_out_scores(
    model: nn.Module, forget: torch.Tensor, cfg, ctx: UnlearnContext
) -> torch.Tensor:
    """Loss increase [n_layer, inner] on the forget set when each unit is dropped."""
    hp = plain(cfg)
    inverted = hp.get("compat", "fixed") == "reference"
    start = None if inverted else ctx.prompt_len  # None: whole-row loss
    adapter = MLPAdapter(model)
    scores = torch.zeros(adapter.n_layer, adapter.inner)
    with frozen(model) as device, torch.no_grad():
        base = sum(
            model_sequence_losses(model, x, start).sum()
            for x in row_batches(forget, hp["batch_size"], device)
        )
        base = float(base) / forget.shape[0]
        for layer in range(adapter.n_layer):
            for units in torch.arange(adapter.inner, device=device).split(hp["unit_chunk"]):
                losses = dropped_losses(
                    model, adapter, layer, units, forget, start, hp["batch_size"], inverted
                )
                scores[layer, units.cpu()] = losses.cpu() - base
    return scores
