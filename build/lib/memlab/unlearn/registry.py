"""The unlearning-method registry and the context every method receives.

A method is a function ``(model, forget, retain, cfg, ctx) -> Edit`` registered under the short
name its YAML (``conf/unlearn/<name>.yaml``) uses. ``forget``/``retain`` are token tensors [N, T];
``cfg`` holds ``ratio`` and the method's hyperparameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from memlab.errors import Registry

METHODS = Registry("unlearning method", key="unlearn.name")

# the paper's eleven methods (reference CLI name in brackets)
NEURON_METHODS = ["zero_out", "activations", "slimming", "hard_concrete", "integrated_gradients"]
WEIGHT_METHODS = [
    "greedy",
    "durable",
    "durable_aggregate",
    "second_order",
    "subnet",
    "balanced_subnet",
]
ELEVEN = NEURON_METHODS + WEIGHT_METHODS
REFERENCE_NAMES = {
    "zero": "zero_out",
    "act": "activations",
    "slim": "slimming",
    "hc": "hard_concrete",
    "ig": "integrated_gradients",
    "greedy": "greedy",
    "durable": "durable",
    "durable_agg": "durable_aggregate",
    "obs": "second_order",
    "random": "subnet",
    "random_greedy": "balanced_subnet",
}


@dataclass
class UnlearnContext:
    """What a method needs besides data and hyperparameters."""

    prompt_len: int  # the memorization prompt length (continuation losses start here)
    k: int  # scored continuation length
    pad_id: int
    eos_id: int | None
    seed: int = 0
    trainer: dict | None = None  # the run's Lightning trainer preset (mask-training methods use it)


def get_method(name: str):
    """The method registered as ``name`` (importing the catalogue first)."""
    import memlab.unlearn.catalog  # noqa: F401  (registers every method)

    return METHODS.get(name)
