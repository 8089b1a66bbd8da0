"""Model-agnostic forward helpers (HF causal LMs return output objects, others plain tensors)."""

from __future__ import annotations

import torch
from torch import nn


def logits_of(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Next-token logits [B, T, V] of a causal LM for ``input_ids`` [B, T]."""
    out = model(input_ids=input_ids)
    return out.logits if hasattr(out, "logits") else out


def model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover
        return torch.device("cpu")


class eval_mode:
    """Context manager: eval mode + no grad, restoring the previous training flag."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> nn.Module:
        self.was_training = self.model.training
        self.model.eval()
        self.no_grad = torch.no_grad()
        self.no_grad.__enter__()
        return self.model

    def __exit__(self, *exc) -> None:
        self.no_grad.__exit__(*exc)
        self.model.train(self.was_training)
