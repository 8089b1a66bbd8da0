"""The training loop Slimming and HardConcrete share: learn one gate per FFN unit on the forget
set while the model stays frozen (unlearning spec §6.3, §6.4).

Objective per batch: LM loss of the gated model + λ · sparsity(gates), Adam on the gates only.
The gates multiply the FFN activations through the shared patching hook, so the model's own
weights are never touched.

Differences from the reference (§13 item 4): gradients are zeroed before every step (the
reference zeroed them once per epoch, so every step used the running sum of the epoch's
gradients), and early stopping works: the sparsity term is compared with ``stop_loss`` after every
step and training ends once it falls below (the reference checked only on epochs divisible by
100 (Slimming) / 10 (HardConcrete), which never happens in the paper's 1/10/20-epoch grid).
``compat: reference`` restores both behaviours.
"""

from __future__ import annotations

import logging
from functools import partial

import torch
from torch import nn

from memlab.models.mlp_adapter import MLPAdapter
from memlab.unlearn.losses import model_sequence_losses
from memlab.unlearn.neuron.forward import frozen, row_batches
from memlab.unlearn.neuron.patching import patched, scale

log = logging.getLogger(__name__)


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


@torch.no_grad()
def sparsity(gates: UnitGates) -> float:
    """The current value of the sparsity term (what early stopping compares with stop_loss)."""
    return float(gates.penalty())


def train_gates(
    model: nn.Module,
    gates: UnitGates,
    forget: torch.Tensor,
    hp: dict,
    reference_check_every: int,
) -> dict[str, float]:
    """Fit ``gates`` on ``forget`` (hp: lr, lambda_l1, stop_loss, epochs, batch_size, compat);
    returns what happened (steps, whether it stopped early, the final sparsity term)."""
    reference = hp.get("compat", "fixed") == "reference"
    adapter = MLPAdapter(model)
    steps, stopped = 0, False
    with frozen(model) as device:
        gates.to(device).train()
        optimizer = torch.optim.Adam(gates.parameters(), lr=hp["lr"])
        patches = {layer: scale(partial(gates.gate, layer)) for layer in range(adapter.n_layer)}
        with patched(adapter, patches):
            for epoch in range(int(hp["epochs"])):
                check = not reference or (epoch + 1) % reference_check_every == 0
                if reference:
                    optimizer.zero_grad()  # once per epoch: gradients accumulate (reference)
                for x in row_batches(forget, hp["batch_size"], device):
                    if not reference:
                        optimizer.zero_grad(set_to_none=True)
                    loss = (
                        model_sequence_losses(model, x).mean() + hp["lambda_l1"] * gates.penalty()
                    )
                    loss.backward()
                    optimizer.step()
                    steps += 1
                    if check and sparsity(gates) < hp["stop_loss"]:
                        stopped = True
                        break  # the reference only leaves this epoch's batch loop
                if stopped and not reference:
                    break
        gates.eval()
    info = {"steps": steps, "stopped_early": stopped, "penalty": sparsity(gates)}
    log.info("gate training: %s", info)
    return info
