"""Slimming and HardConcrete (Chang et al. 2024, MemPi): one algorithm with two kinds of gate.
With the model frozen, a gate per FFN unit multiplies that unit's activation; the gates minimise
the forget set's LM loss + λ · sparsity(gates), so the sparsity term pushes every gate shut and
only the units needed to keep reproducing the memorized rows stay open. Those units (largest
gate scores) are ablated. The gates act through the shared activation-patching hook, so the
model's own weights are never touched.

- Slimming (after network slimming, Liu et al. 2017): a coefficient c per unit, init 1, applied as
  clip(c, 0, 1); sparsity = mean|c|; scores = clip(c, 0, 1).
- HardConcrete (L0 gates, Louizos et al. 2018): a logit α per unit; the gate is a hard-concrete
  sample m = clamp(σ((log u − log(1−u) + α)/β)·(r−l) + l, 0, 1), u ~ U(0, 1), l = −0.1, r = 1.1,
  β = 2/3 — masking unit j's FFN-out column by m_j equals scaling its activation by m_j;
  sparsity = mean σ(α − β·log(−l/r)) (the expected L0 norm); scores = σ(α). Masks are stochastic
  only while training (deviations.md D37).

Training loop: Adam on the gates only, gradients zeroed before every step (deviations.md D35;
``compat: reference`` zeroes them once per epoch). Early stopping follows the reference's cadence
by default (``stop_check: epochs``): on epochs divisible by ``stop_check_epochs`` (100 Slimming,
10 HardConcrete) the sparsity term is compared with ``stop_loss`` after every step and, once it is
below, the rest of that epoch is skipped; ``stop_check: step`` compares after every step of every
epoch and ends training (deviations.md D36).
"""

from __future__ import annotations

import logging
import math
from functools import partial
from typing import Any

import torch
from torch import nn

from memlab.errors import ConfigError
from memlab.models.edit import Edit
from memlab.models.mlp_adapter import MLPAdapter
from memlab.unlearn.common import UnlearnContext, frozen, hparams_of, row_batches, sequence_losses
from memlab.unlearn.neurons import attribute_and_ablate, patched, scale

log = logging.getLogger(__name__)

STOP_CHECKS = ("epochs", "step")
EPS = 1e-4  # HardConcrete's u is kept in [EPS, 1 − EPS]


class UnitGates(nn.Module):
    """Trainable per-unit gates [n_layer, inner]."""

    def gate(self, layer: int) -> torch.Tensor:
        """The [inner] multipliers of ``layer``'s activations in the current forward pass."""
        raise NotImplementedError

    def penalty(self) -> torch.Tensor:
        """The sparsity term (compared with ``stop_loss`` for early stopping)."""
        raise NotImplementedError

    def scores(self) -> torch.Tensor:
        """Attribution [n_layer, inner]: large = the unit is needed to keep the loss low."""
        raise NotImplementedError


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


class HardConcreteGates(UnitGates):
    """Hard-concrete gates with logits α [n_layer, inner]; the uniform noise comes from a local
    generator seeded with the unlearning seed."""

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
                f"unlearn.mask_p={hp['mask_p']}: outside the stretched interval; allowed: strictly "
                f"between {lower} and {upper}"
            )
        return torch.full((n_layer, inner), math.log(p / (1 - p)))
    if init == "normal":
        g = torch.Generator().manual_seed(seed)
        return torch.randn(n_layer, inner, generator=g) * float(hp["init_std"])
    raise ConfigError(f"unlearn.init={init}: unknown hard-concrete init; allowed: logit_p, normal")


@torch.no_grad()
def sparsity(gates: UnitGates) -> float:
    """The current value of the sparsity term (what early stopping compares with stop_loss)."""
    return float(gates.penalty())


def stop_check_of(hp: dict) -> str:
    value = hp.get("stop_check", "epochs")
    if value not in STOP_CHECKS:
        raise ConfigError(f"unlearn.stop_check={value}: unknown; allowed: {', '.join(STOP_CHECKS)}")
    return value


def train_gates(
    model: nn.Module, gates: UnitGates, forget: torch.Tensor, hp: dict
) -> dict[str, float]:
    """Fit ``gates`` on ``forget`` (hp: lr, lambda_l1, stop_loss, stop_check, stop_check_epochs,
    epochs, batch_size, compat); returns what happened (steps, whether a stop check fired, the
    final sparsity term)."""
    accumulate = hp.get("compat", "fixed") == "reference"  # zero_grad once per epoch (D35)
    per_step = stop_check_of(hp) == "step"
    adapter = MLPAdapter(model)
    steps, stopped = 0, False
    with frozen(model) as device:
        gates.to(device).train()
        optimizer = torch.optim.Adam(gates.parameters(), lr=hp["lr"])
        patches = {layer: scale(partial(gates.gate, layer)) for layer in range(adapter.n_layer)}
        with patched(adapter, patches):
            for epoch in range(int(hp["epochs"])):
                check = per_step or (epoch + 1) % int(hp["stop_check_epochs"]) == 0
                if accumulate:
                    optimizer.zero_grad()
                for x in row_batches(forget, hp["batch_size"], device):
                    if not accumulate:
                        optimizer.zero_grad(set_to_none=True)
                    loss = sequence_losses(model, x).mean() + hp["lambda_l1"] * gates.penalty()
                    loss.backward()
                    optimizer.step()
                    steps += 1
                    if check and sparsity(gates) < hp["stop_loss"]:
                        stopped = True
                        break  # the rest of this epoch is skipped
                if stopped and per_step:
                    break  # the per-step check ends training
        gates.eval()
    info = {"steps": steps, "stopped_early": stopped, "penalty": sparsity(gates)}
    log.info("gate training: %s", info)
    return info


def slimming_scores(
    model: nn.Module, forget: torch.Tensor, cfg: Any, ctx: UnlearnContext
) -> torch.Tensor:
    """clip(c, 0, 1) [n_layer, inner] after training the coefficients on the forget set."""
    adapter = MLPAdapter(model)
    gates = SlimmingGates(adapter.n_layer, adapter.inner)
    train_gates(model, gates, forget, hparams_of(cfg))
    return gates.scores()


def hard_concrete_scores(
    model: nn.Module, forget: torch.Tensor, cfg: Any, ctx: UnlearnContext
) -> torch.Tensor:
    """σ(α) [n_layer, inner] after training the gate logits on the forget set."""
    hp = hparams_of(cfg)
    adapter = MLPAdapter(model)
    gates = HardConcreteGates(adapter.n_layer, adapter.inner, hp, ctx.seed)
    train_gates(model, gates, forget, hp)
    return gates.scores()


def slimming(
    model: nn.Module, forget: torch.Tensor, retain: torch.Tensor, cfg: Any, ctx: UnlearnContext
) -> Edit:
    """Silence the units whose Slimming coefficients stay largest."""
    return attribute_and_ablate("slimming", slimming_scores, model, forget, cfg, ctx)


def hard_concrete(
    model: nn.Module, forget: torch.Tensor, retain: torch.Tensor, cfg: Any, ctx: UnlearnContext
) -> Edit:
    """Silence the units with the largest hard-concrete keep-probability σ(α)."""
    return attribute_and_ablate("hard_concrete", hard_concrete_scores, model, forget, cfg, ctx)
