"""What every unlearning method shares, neuron and weight methods alike: the context a method
receives, its hyperparameters, the one ratio check and count, top-k selection, row batches,
requires-grad scopes, the per-sequence loss, MLP gradients and the Edit a method returns.

Every method reaches the MLP through :class:`~memlab.models.mlp_adapter.MLPAdapter`, so GPT-2
(Conv1D) and GPT-NeoX (Linear) models are handled alike, and masks are boolean tensors on the
model's device (deviations.md D44).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from memlab.data.datamodule import ShuffledBatches
from memlab.errors import ConfigError
from memlab.metrics.forward import logits_of, model_device, token_losses
from memlab.models.edit import Edit
from memlab.models.mlp_adapter import MLPAdapter


@dataclass
class UnlearnContext:
    """What a method needs besides data and hyperparameters."""

    prompt_len: int  # the memorization prompt length (continuation losses start here)
    k: int  # scored continuation length
    pad_id: int
    eos_id: int | None
    seed: int = 0
    trainer: dict | None = None  # the run's Lightning trainer preset (mask-training methods use it)


def hparams_of(cfg: Any) -> dict[str, Any]:
    """The method config as a plain dict (DictConfig or mapping)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return dict(cfg)


# --------------------------------------------------------------------------- ratio and counts
def check_ratio(ratio: Any) -> float:
    """``unlearn.ratio`` as a float in [0, 1], or one clear line. The runner calls it once, before
    loading anything; counting below trusts it."""
    try:
        value = float(ratio)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise ConfigError(
            f"unlearn.ratio={ratio}: not a fraction; allowed: a number in [0, 1] (share of the "
            "units or weights edited)"
        )
    return value


def count_of(n: int, ratio: float) -> int:
    """⌊n · ratio⌋, at most n: FFN units per layer, entries per tensor or over all tensors (a 1e-9
    tolerance keeps e.g. 100 · 0.29 at 29, not 28; deviations.md D34)."""
    return min(n, math.floor(n * float(ratio) + 1e-9))


def largest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest scores along the last dimension (NaN ranks last)."""
    return torch.nan_to_num(scores.float(), nan=-math.inf).topk(k, dim=-1).indices


def keep_mask_without_largest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Keep-mask (bool, shaped like ``scores``) dropping the ``k`` largest entries."""
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
    keep[largest(scores.reshape(-1), k)] = False
    return keep.view(scores.shape)


def per_tensor_masks(scores: dict[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """Each tensor loses its ⌊numel · ratio⌋ largest-scored entries (Durable, SOU)."""
    return {
        n: keep_mask_without_largest(s, count_of(s.numel(), ratio)).cpu() for n, s in scores.items()
    }


# --------------------------------------------------------------------------- batches
def index_batches(
    n: int, batch_size: int, *, seed: int = 0, epoch: int = 0, shuffle: bool = False
) -> Iterator[torch.Tensor]:
    """Index batches of one pass over ``n`` rows: in order, or the training data's seeded
    permutation for (``seed``, ``epoch``) — the one batching rule of every method."""
    order = ShuffledBatches(n, max(1, int(batch_size)), seed=seed, shuffle=shuffle)
    order.set_epoch(epoch)
    yield from order


def row_batches(
    rows: torch.Tensor,
    batch_size: int,
    device: torch.device,
    *,
    seed: int = 0,
    shuffle: bool = False,
    endless: bool = False,
) -> Iterator[torch.Tensor]:
    """One pass over ``rows`` in batches, on ``device``; ``endless``: passes without end, pass p
    shuffled with seed ``seed + p``."""
    passes = 0
    while True:
        for index in index_batches(len(rows), batch_size, seed=seed + passes, shuffle=shuffle):
            yield rows[index].to(device)
        if not endless:
            return
        passes += 1


# --------------------------------------------------------------------------- requires_grad scopes
@contextmanager
def trainable_only(model: nn.Module, params: Iterable[nn.Parameter] = ()) -> Iterator[None]:
    """Autograd tracks only ``params`` of ``model`` inside the block (nothing, by default); the
    previous ``requires_grad`` flags are restored after."""
    chosen = {id(p) for p in params}
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _flag in flags:
            p.requires_grad_(id(p) in chosen)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@contextmanager
def frozen(model: nn.Module) -> Iterator[torch.device]:
    """Model weights without gradients and in eval mode while inside (attribution only trains
    gates or differentiates activations); yields the model's device."""
    was_training = model.training
    try:
        with trainable_only(model):
            model.eval()
            yield model_device(model)
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- losses, gradients
def sequence_losses(
    model: nn.Module, input_ids: torch.Tensor, prompt_len: int | None = None
) -> torch.Tensor:
    """Per-sequence mean next-token CE [B]: over every position (padding included, the reference's
    loss, so forget and retain rows can be weighted inside one batch), or over the continuation
    targets (tokens ``prompt_len`` … T−1, MemPi's suffix loss) when ``prompt_len`` is given."""
    losses = token_losses(logits_of(model, input_ids), input_ids)
    if prompt_len is None:
        return losses.mean(dim=1)
    if not 1 <= prompt_len < input_ids.shape[1]:
        raise ValueError(f"prompt_len={prompt_len} must be in [1, {input_ids.shape[1] - 1}]")
    return losses[:, prompt_len - 1 :].mean(dim=1)


def mlp_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Every MLP weight and bias by full parameter name (what Greedy/Durable/SOU may zero)."""
    return MLPAdapter(model).parameters()


def gradients(loss: torch.Tensor, params: dict[str, nn.Parameter]) -> dict[str, torch.Tensor]:
    """d loss / d param for every named parameter (fresh tensors; ``.grad`` is left untouched)."""
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    return {
        name: torch.zeros_like(p) if g is None else g for (name, p), g in zip(params.items(), grads)
    }


def make_edit(method: str, masks: dict[str, torch.Tensor], cfg: Any, **extra: Any) -> Edit:
    """The Edit of a method: keep-masks plus its hyperparameters (and any extra facts)."""
    return Edit(method, {n: m.cpu() for n, m in masks.items()}, {**hparams_of(cfg), **extra})
