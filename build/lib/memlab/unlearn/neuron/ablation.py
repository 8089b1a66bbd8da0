"""The one ablation shared by every neuron method (unlearning spec §6.0, §15 NEURON_ABLATE).

Per layer, the k = ⌊inner · ratio⌋ units with the largest scores are silenced by zeroing their
FFN-in weights and bias (act(0) = 0 for ReLU/GELU, so the unit outputs 0 for every input).

Differences from the reference (§13 items 2, 3): layers are addressed by module path through
:class:`~memlab.models.mlp_adapter.MLPAdapter` — the reference found a layer's tensor by the
substring ``str(layer) in name`` and edited the wrong layers of ≥ 10-layer models and of Pythia —
and every k ≥ 0 works (the reference ablated nothing for k = 0 by accident and crashed for k = 1).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from memlab.models.edit import Edit
from memlab.models.mlp_adapter import MLPAdapter
from memlab.unlearn.ratio import check_ratio as shared_check_ratio


def units_per_layer(inner: int, ratio: float) -> int:
    """k = ⌊inner · ratio⌋ (a 1e-9 tolerance keeps e.g. 100 · 0.29 at 29, not 28)."""
    check_ratio(ratio)
    return min(inner, math.floor(inner * float(ratio) + 1e-9))


def check_ratio(ratio: Any) -> float:
    """One clear line for a ratio outside [0, 1] (the shared check, worded for units)."""
    return shared_check_ratio(ratio, of="units")


def top_units(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices [n_layer, k] of the k largest scores of every layer (NaN ranks last)."""
    clean = torch.nan_to_num(scores.float(), nan=-math.inf)
    return clean.topk(k, dim=1).indices


def ablate_top_units(
    model: nn.Module,
    scores: torch.Tensor,
    ratio: float,
    method: str,
    hparams: dict[str, Any] | None = None,
) -> Edit:
    """The Edit that silences the top ⌊inner · ratio⌋ units of every layer by ``scores``."""
    adapter = MLPAdapter(model)
    expected = (adapter.n_layer, adapter.inner)
    if tuple(scores.shape) != expected:
        raise ValueError(f"{method}: scores have shape {tuple(scores.shape)}, expected {expected}")
    k = units_per_layer(adapter.inner, ratio)
    masks: dict[str, torch.Tensor] = {}
    for layer, units in enumerate(top_units(scores.detach().cpu(), k)):
        masks.update(adapter.unit_mask(layer, units))
    return Edit(method, {n: m.cpu() for n, m in masks.items()}, dict(hparams or {}))
