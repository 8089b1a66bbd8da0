"""Forward-pass pieces the neuron methods share: batching and a frozen model (the losses are the
unlearning package's shared ones, :mod:`memlab.unlearn.losses`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from memlab.metrics.forward import model_device


def row_batches(
    rows: torch.Tensor, batch_size: int, device: torch.device
) -> Iterator[torch.Tensor]:
    """``rows`` in order, ``batch_size`` at a time, on ``device``."""
    for batch in rows.split(max(1, int(batch_size))):
        yield batch.to(device)


@contextmanager
def frozen(model: nn.Module) -> Iterator[torch.device]:
    """Model weights without gradients and in eval mode while inside (attribution only trains
    masks or differentiates activations); yields the model's device."""
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    was_training = model.training
    try:
        for p in params:
            p.requires_grad_(False)
        model.eval()
        yield model_device(model)
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
        model.train(was_training)
