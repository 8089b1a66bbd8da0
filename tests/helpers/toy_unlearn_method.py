"""A toy twelfth unlearning method, the worked example of docs/adding-a-method.md: silence
⌊inner · ratio⌋ random FFN units per layer — a baseline that knows nothing about the forget set."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from memlab.models.edit import Edit
from memlab.models.mlp_adapter import MLPAdapter
from memlab.unlearn.common import UnlearnContext
from memlab.unlearn.neurons import attribute_and_ablate

YAML = """\
# Random units: silence floor(inner * ratio) random FFN units per layer (a baseline that ignores the
# forget set; docs/adding-a-method.md).
name: random_units           # method table name (memlab/unlearn/random_units.py)
ratio: 0.01                  # fraction of FFN units silenced per layer: k = floor(inner * ratio), 0..1
"""


def random_scores(model: nn.Module, forget: torch.Tensor, cfg: Any, ctx: UnlearnContext):
    """Uniform random scores [n_layer, inner] from the unlearning seed."""
    adapter = MLPAdapter(model)
    generator = torch.Generator().manual_seed(ctx.seed)
    return torch.rand(adapter.n_layer, adapter.inner, generator=generator)


def random_units(
    model: nn.Module, forget: torch.Tensor, retain: torch.Tensor, cfg: Any, ctx: UnlearnContext
) -> Edit:
    """Silence ⌊inner · ratio⌋ random units of every layer."""
    return attribute_and_ablate("random_units", random_scores, model, forget, cfg, ctx)
