"""Keep the original MLP weights — and nothing else — so a model can be restored after an edit.

The reference keeps ``original_model = deepcopy(model)`` on the production path, doubling the memory
of a 6.9B model (unlearning spec §13 item 24). Every unlearning method edits MLP parameters only,
so a CPU copy of those (≈ 2/3 of a Pythia model's non-embedding weights, in the model's dtype) is
all that restoring needs; under ZeRO-3 the partitioned parameters are gathered for the copy and
the restore.
"""

from __future__ import annotations

import torch
from torch import nn

from memlab.models.mlp_adapter import MLPAdapter
from memlab.models.zero3 import gathered_for_edit


class MLPSnapshot:
    """CPU copies of every MLP weight and bias of ``model`` at construction time."""

    def __init__(self, model: nn.Module) -> None:
        params = MLPAdapter(model).parameters()
        with gathered_for_edit(list(params.values()), modify=False):
            self.weights = {n: p.detach().to("cpu", copy=True) for n, p in params.items()}

    @property
    def numel(self) -> int:
        return sum(t.numel() for t in self.weights.values())

    @torch.no_grad()
    def restore(self, model: nn.Module) -> nn.Module:
        """Write the saved MLP weights back into ``model`` (in place)."""
        params = dict(model.named_parameters())
        targets = [params[n] for n in self.weights]
        with gathered_for_edit(targets, modify=True):
            for name, saved in self.weights.items():
                params[name].copy_(saved.to(params[name].device))
        return model
