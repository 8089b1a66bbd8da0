"""HardConcrete (Chang et al. 2024, MemPi, with the L0 hard-concrete gates of Louizos et al.
2018; unlearning spec §6.4, §15 HARD_CONCRETE).

Every input unit of the FFN-out projection gets a logit α; its gate is a hard-concrete sample
m = clamp(σ((log u − log(1−u) + α)/β)·(r−l) + l, 0, 1), u ~ U(0, 1), with l = −0.1, r = 1.1,
β = 2/3. Masking the FFN-out weight column of unit j by m_j is the same as multiplying unit j's
activation by m_j, so the gate goes through the shared activation-patching hook. With the model
frozen, α minimises the forget set's LM loss + λ · mean_j σ(α_j − β·log(−l/r)) (the expected L0
norm); scores = σ(α), the units most needed are ablated.

Differences from the reference (§13 item 5; loop fixes in
:mod:`memlab.unlearn.neuron.gate_training`): masks are stochastic only while training and
deterministic (clamp(σ(α)·(r−l) + l, 0, 1)) otherwise — the reference sampled even in eval mode;
``init: logit_p`` starts α at log(p/(1−p)) with p = (mask_p − l)/(r − l), the initialisation the
reference computed and then overwrote with N(0, 0.01) (``init: normal``, with ``init_std``). The
uniform noise comes from a local generator seeded with the unlearning seed, not the global RNG.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from memlab.errors import ConfigError
from memlab.models.mlp_adapter import MLPAdapter
from memlab.unlearn.neuron.base import neuron_method, plain
from memlab.unlearn.neuron.gate_training import UnitGates, train_gates
from memlab.unlearn.registry import UnlearnContext

REFERENCE_CHECK_EVERY = 10  # the reference's early-stop check ran on epochs divisible by 10
EPS = 1e-4  # u is kept in [EPS, 1 − EPS]


class HardConcreteGates(UnitGates):
    """Hard-concrete gates with logits α [n_layer, inner]."""

    def __init__(self, n_layer: int, inner: int, hp: dict, seed: int) -> None:
        super().__init__()
        self.l, self.r, self.beta = float(hp["l"]), float(hp["r"]), float(hp["beta"])
        self.logits = nn.Parameter(initial_logits(n_layer, inner, hp, seed, self.l, self.r))
        self.seed = seed
        self.generator: torch.Generator | None = None

    def _noise(self, n: int) -> torch.Tensor:
        device = self.logits.device
        if self.generator is None or self.generator.device != device:
            self.generator = torch.Generator(device=device).manual_seed(self.seed)
        u = torch.rand(n, generator=self.generator, device=device)
        u = u.clamp(EPS, 1 - EPS)
        return u.log() - (1 - u).log()

    def gate(self, layer: int) -> torch.Tensor:
        alpha = self.logits[layer]
        if self.training:
            s = torch.sigmoid((self._noise(alpha.numel()) + alpha) / self.beta)
        else:
            s = torch.sigmoid(alpha)
        return (s * (self.r - self.l) + self.l).clamp(0.0, 1.0)

    def penalty(self) -> torch.Tensor:
        shift = self.beta * math.log(-self.l / self.r)
        return torch.sigmoid(self.logits - shift).mean()  # expected share of open gates

    def scores(self) -> torch.Tensor:
        return torch.sigmoid(self.logits.detach())


def initial_logits(
    n_layer: int, inner: int, hp: dict, seed: int, lower: float, upper: float
) -> torch.Tensor:
    """α at the start: ``logit_p`` (log(p/(1−p)), p = (mask_p − l)/(r − l)) or ``normal``."""
    init = hp.get("init", "logit_p")
    if init == "logit_p":
        p = (float(hp["mask_p"]) - lower) / (upper - lower)
        if not 0.0 < p < 1.0:
            raise ConfigError(
                f"unlearn.mask_p={hp['mask_p']} must lie strictly inside ({lower}, {upper})"
            )
        return torch.full((n_layer, inner), math.log(p / (1 - p)))
    if init == "normal":
        g = torch.Generator().manual_seed(seed)
        return torch.randn(n_layer, inner, generator=g) * float(hp["init_std"])
    raise ConfigError(f"unlearn.init={init} is not a hard-concrete init; known: logit_p, normal")


@neuron_method("hard_concrete")
def hard_concrete_scores(
    model: nn.Module, forget: torch.Tensor, cfg, ctx: UnlearnContext
) -> torch.Tensor:
    """σ(α) [n_layer, inner] after training the gate logits on the forget set."""
    hp = plain(cfg)
    adapter = MLPAdapter(model)
    gates = HardConcreteGates(adapter.n_layer, adapter.inner, hp, ctx.seed)
    train_gates(model, gates, forget, hp, REFERENCE_CHECK_EVERY)
    return gates.scores()
