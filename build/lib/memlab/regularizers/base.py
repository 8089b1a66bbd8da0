"""The small protocol through which the training module consults regularizer callbacks.

A regularizer is a Lightning ``Callback`` that may (a) reweight per-sequence losses (loss
truncation), (b) add a penalty to the loss (spectral norm), (c) change the model at fit start
(example-tied dropout). With no regularizer the training path is untouched.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch


class Regularizer(pl.Callback):
    """Base class: every hook is a no-op."""

    def sequence_weights(
        self, module: pl.LightningModule, seq_loss: torch.Tensor, index: torch.Tensor
    ) -> torch.Tensor | None:
        """Weights [B] for the per-sequence losses (None = keep all)."""
        return None

    def penalty(self, module: pl.LightningModule) -> torch.Tensor | None:
        """A term added to the training loss (None = nothing)."""
        return None


def regularizers_of(trainer: pl.Trainer | None) -> list[Regularizer]:
    if trainer is None:
        return []
    return [cb for cb in trainer.callbacks if isinstance(cb, Regularizer)]
