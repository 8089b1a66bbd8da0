"""Activations, "ACT" (Chang et al. 2024, MemPi): silence the units that fire strongly, and write
strongly into the residual stream, while the model reproduces its memorized continuations.

score[l, j] = |mean over forget rows and continuation-predicting positions
(t = prompt_len−1 … L−2) of the post-activation a[l, t, j]| · ‖output weights of unit j‖₂. The
absolute value is taken after averaging; the mean is the plain mean over every row and position.

Differences from the reference: deviations.md D40.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from memlab.models.edit import Edit
from memlab.models.mlp_adapter import MLPAdapter
from memlab.unlearn.common import UnlearnContext, frozen, hparams_of, row_batches
from memlab.unlearn.neurons import attribute_and_ablate, capture, patched, prompt_len


def activation_scores(
    model: nn.Module, forget: torch.Tensor, cfg: Any, ctx: UnlearnContext
) -> torch.Tensor:
    """|mean continuation activation| × output-weight norm, [n_layer, inner]."""
    hp = hparams_of(cfg)
    first, T = prompt_len(hp, ctx) - 1, forget.shape[1]
    adapter = MLPAdapter(model)
    sums = torch.zeros(adapter.n_layer, adapter.inner, dtype=torch.float64)

    def add_to(layer: int):
        def sink(act: torch.Tensor) -> None:
            sums[layer] += act[:, first : T - 1].double().sum(dim=(0, 1)).cpu()

        return sink

    patches = {layer: capture(add_to(layer)) for layer in range(adapter.n_layer)}
    with frozen(model) as device, torch.no_grad(), patched(adapter, patches):
        for x in row_batches(forget, hp["batch_size"], device):
            model(input_ids=x)
    mean = sums / (forget.shape[0] * (T - 1 - first))
    norms = torch.stack([block.out_weight_norms().cpu() for block in adapter.blocks])
    return mean.abs().float() * norms


def activations(
    model: nn.Module, forget: torch.Tensor, retain: torch.Tensor, cfg: Any, ctx: UnlearnContext
) -> Edit:
    """Silence the units with the largest mean continuation activation × output-weight norm."""
    return attribute_and_ablate("activations", activation_scores, model, forget, cfg, ctx)
