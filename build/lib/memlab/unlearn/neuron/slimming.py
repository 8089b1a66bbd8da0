"""Slimming (Chang et al. 2024, MemPi, after network slimming — Liu et al. 2017; unlearning spec
§6.3, §15 SLIMMING).

Every FFN unit gets a learnable coefficient c (init 1, applied as clip(c, 0, 1) to its
activation). With the model frozen, the coefficients minimise the forget set's LM loss plus
λ · mean|c|: the L1 term pushes every coefficient down, and only units needed to keep reproducing
the memorized rows resist. Scores = clip(c, 0, 1); the largest are ablated.

Training-loop fixes (gradients zeroed every step, working early stopping) are documented in
:mod:`memlab.unlearn.neuron.gate_training`; ``compat: reference`` restores the old loop.
"""

from __future__ import annotations

import torch
from torch import nn

from memlab.models.mlp_adapter import MLPAdapter
from memlab.unlearn.neuron.base import neuron_method, plain
from memlab.unlearn.neuron.gate_training import UnitGates, train_gates
from memlab.unlearn.registry import UnlearnContext

REFERENCE_CHECK_EVERY = 100  # the reference's early-stop check ran on epochs divisible by 100


class SlimmingGates(UnitGates):
    """Coefficients c [n_layer, inner], used as clip(c, 0, 1)."""

    def __init__(self, n_layer: int, inner: int) -> None:
        super().__init__()
        self.coef = nn.Parameter(torch.ones(n_layer, inner))

    def gate(self, layer: int) -> torch.Tensor:
        return self.coef[layer].clamp(0.0, 1.0)

    def penalty(self) -> torch.Tensor:
        return self.coef.abs().mean()  # Σ_l ‖c_l‖₁ / (n_layer · inner)

    def scores(self) -> torch.Tensor:
        return self.coef.detach().clamp(0.0, 1.0)


@neuron_method("slimming")
def slimming_scores(
    model: nn.Module, forget: torch.Tensor, cfg, ctx: UnlearnContext
) -> torch.Tensor:
    """clip(c, 0, 1) [n_layer, inner] after training the coefficients on the forget set."""
    adapter = MLPAdapter(model)
    gates = SlimmingGates(adapter.n_layer, adapter.inner)
    train_gates(model, gates, forget, plain(cfg), REFERENCE_CHECK_EVERY)
    return gates.scores()
