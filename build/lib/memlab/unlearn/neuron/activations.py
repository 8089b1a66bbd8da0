"""Activations, "ACT" (Chang et al. 2024, MemPi; unlearning spec §6.2, §15 ACT).

score[l, j] = |mean over forget rows and continuation-predicting positions
(t = prompt_len−1 … L−2) of the post-activation a[l, t, j]| · ‖output weights of unit j‖₂ —
units that fire strongly, and write strongly into the residual stream, while the model reproduces
its memorized continuations. The absolute value is taken after averaging.

Difference from the reference (§13 item 7): the reference summed each batch into slots 0…B−1 of a
fixed-size buffer and divided by the number of batches (a per-slot average, biased when the last
batch is partial), and its hook squeezed the batch dimension (breaking batch size 1). Here the
mean is the plain mean over every row and position.
"""

from __future__ import annotations

import torch
from torch import nn

from memlab.models.mlp_adapter import MLPAdapter
from memlab.unlearn.neuron.base import neuron_method, plain, prompt_len
from memlab.unlearn.neuron.forward import frozen, row_batches
from memlab.unlearn.neuron.patching import capture, patched
from memlab.unlearn.registry import UnlearnContext


@neuron_method("activations")
def activation_scores(
    model: nn.Module, forget: torch.Tensor, cfg, ctx: UnlearnContext
) -> torch.Tensor:
    """|mean continuation activation| × output-weight norm, [n_layer, inner]."""
    hp = plain(cfg)
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
