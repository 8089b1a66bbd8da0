"""Model-agnostic forward helpers (HF causal LMs return output objects, others plain tensors)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def logits_of(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Next-token logits [B, T, V] of a causal LM for ``input_ids`` [B, T]."""
    out = model(input_ids=input_ids)
    return out.logits if hasattr(out, "logits") else out


def token_losses(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Token-level next-token cross-entropy [B, T−1] (the target of position t is token t+1), in
    float32: the one language-model loss of training, unlearning and the utility metrics."""
    return F.cross_entropy(
        logits[:, :-1].transpose(1, 2).float(), input_ids[:, 1:], reduction="none"
    )


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
