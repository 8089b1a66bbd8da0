"""The method table: every unlearning method memlab knows, in one place.

A method is a function ``(model, forget, retain, cfg, ctx) -> Edit`` (``forget``/``retain``: token
tensors [N, T]; ``cfg``: ``ratio`` and the method's hyperparameters from
``conf/unlearn/<name>.yaml``; ``ctx``: :class:`~memlab.unlearn.common.UnlearnContext`). Adding a
method takes its file, its YAML and one line here (docs/adding-a-method.md). The paper's eleven,
the neuron/weight families and the reference's CLI names are all derived from this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from memlab.errors import lookup
from memlab.models.edit import Edit
from memlab.unlearn import (
    activations,
    durable,
    gates,
    greedy,
    integrated_gradients,
    second_order,
    subnet,
    zero_out,
)
from memlab.unlearn.common import UnlearnContext

MethodFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, Any, UnlearnContext], Edit]


@dataclass(frozen=True)
class Method:
    """One row of the table."""

    edit: MethodFn  # computes the Edit (it may change the model it is given)
    family: Literal["neuron", "weight"]  # FFN units silenced | MLP weight entries zeroed
    reference: str | None = None  # the reference's `--localization_method` (None: not in the paper)


# the reference's order of the paper's eleven: neuron methods, then weight methods
METHODS: dict[str, Method] = {
    "zero_out": Method(zero_out.zero_out, "neuron", "zero"),
    "activations": Method(activations.activations, "neuron", "act"),
    "slimming": Method(gates.slimming, "neuron", "slim"),
    "hard_concrete": Method(gates.hard_concrete, "neuron", "hc"),
    "integrated_gradients": Method(integrated_gradients.integrated_gradients, "neuron", "ig"),
    "greedy": Method(greedy.greedy, "weight", "greedy"),
    "durable": Method(durable.durable, "weight", "durable"),
    "durable_aggregate": Method(durable.durable_aggregate, "weight", "durable_agg"),
    "second_order": Method(second_order.second_order, "weight", "obs"),
    "subnet": Method(subnet.subnet, "weight", "random"),
    "balanced_subnet": Method(subnet.balanced_subnet, "weight", "random_greedy"),
}

ELEVEN = [name for name, m in METHODS.items() if m.reference is not None]
NEURON_METHODS = [name for name, m in METHODS.items() if m.family == "neuron"]
WEIGHT_METHODS = [name for name, m in METHODS.items() if m.family == "weight"]
# reference CLI name → memlab name
REFERENCE_NAMES = {m.reference: name for name, m in METHODS.items() if m.reference is not None}


def method_named(name: Any) -> Method:
    """The table's entry for ``unlearn.name``, or one line listing the known names."""
    return lookup(METHODS, name, kind="unlearning method", key="unlearn.name")
