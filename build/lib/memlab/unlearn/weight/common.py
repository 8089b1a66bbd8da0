"""What the weight-level methods share (unlearning spec §7, §7.8): the MLP parameters, counts from
``ratio``, gradients of MLP parameters only, top-k keep-masks per tensor or globally, batches.

Every method reaches the MLP through :class:`~memlab.models.mlp_adapter.MLPAdapter`, so GPT-2
(Conv1D) and GPT-NeoX (Linear) models are handled alike, and masks are boolean tensors — the
reference's Durable Aggregate built Python sets of flat indices and its masks were created with a
hard-coded ``.cuda()`` (§13 item 11).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from memlab.data.datamodule import batch_loader
from memlab.metrics.forward import model_device
from memlab.models.edit import Edit
from memlab.models.mlp_adapter import MLPAdapter
from memlab.unlearn.ratio import check_ratio  # noqa: F401  (re-exported for the methods)


def hparams_of(cfg: Any) -> dict[str, Any]:
    """The method config as a plain dict (DictConfig or mapping)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return dict(cfg)


def count_for(numel: int, ratio: float) -> int:
    """⌊numel · ratio⌋ (spec §7.8; a 1e-9 tolerance keeps e.g. 100 · 0.29 at 29, not 28)."""
    return min(numel, math.floor(numel * check_ratio(ratio) + 1e-9))


def mlp_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Every MLP weight and bias by full parameter name (what Greedy/Durable/SOU may zero)."""
    return MLPAdapter(model).parameters()


@contextmanager
def grads_only_for(model: nn.Module, params: dict[str, nn.Parameter]) -> Iterator[None]:
    """Autograd tracks only ``params`` inside the block (embeddings, attention and norms are
    frozen, so their gradients are never computed); the previous flags are restored after."""
    flags = {p: p.requires_grad for p in model.parameters()}
    chosen = {id(p) for p in params.values()}
    try:
        for p in model.parameters():
            p.requires_grad_(id(p) in chosen)
        yield
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)


def gradients(loss: torch.Tensor, params: dict[str, nn.Parameter]) -> dict[str, torch.Tensor]:
    """d loss / d param for every named parameter (fresh tensors; ``.grad`` is left untouched)."""
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    return {
        name: torch.zeros_like(p) if g is None else g for (name, p), g in zip(params.items(), grads)
    }


def row_batches(
    rows: torch.Tensor, batch_size: int, seed: int, shuffle: bool, device: torch.device
) -> Iterator[torch.Tensor]:
    """One pass over ``rows`` in batches, on ``device``."""
    for batch, _index in batch_loader(rows, batch_size, seed, shuffle):
        yield batch.to(device)


def cycle_batches(
    rows: torch.Tensor, batch_size: int, seed: int, shuffle: bool, device: torch.device
) -> Iterator[torch.Tensor]:
    """Endless batches over ``rows``, reshuffled (seed + pass number) at every pass."""
    epoch = 0
    while True:
        yield from row_batches(rows, batch_size, seed + epoch, shuffle, device)
        epoch += 1


def device_of(model: nn.Module) -> torch.device:
    return model_device(model)


def top_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Keep-mask (bool, same shape) dropping the ``k`` largest scores of one tensor."""
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
    if k > 0:
        flat = torch.nan_to_num(scores.reshape(-1).float(), nan=-math.inf)
        keep[flat.topk(k).indices] = False
    return keep.view(scores.shape)


def per_tensor_masks(scores: dict[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """Each tensor loses its ⌊numel · ratio⌋ largest-scored entries (Durable, SOU)."""
    return {n: top_k_mask(s, count_for(s.numel(), ratio)).cpu() for n, s in scores.items()}


def kth_largest_nonnegative(scores: dict[str, torch.Tensor], k: int) -> torch.Tensor:
    """The k-th largest value over all tensors of non-negative float scores, found by bisection
    over their float32 bit patterns (which order like the values for x ≥ 0): 31 counting passes,
    no concatenation of all scores (a 6.9B Pythia has 4.3e9 MLP entries)."""
    bits = {
        n: s.detach().float().clamp(min=0).contiguous().view(torch.int32) for n, s in scores.items()
    }
    lo, hi = 0, 2**31 - 1  # invariant: count(bits >= lo) >= k > count(bits >= hi + 1)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        count = sum(int((b >= mid).sum()) for b in bits.values())
        if count >= k:
            lo = mid
        else:
            hi = mid - 1
    return torch.tensor(lo, dtype=torch.int32).view(torch.float32)


def global_masks(scores: dict[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """The ⌊N · ratio⌋ largest non-negative scores over all tensors together are dropped (Durable
    Aggregate, spec §7.3). Ties at the threshold are broken by tensor order, then flat position,
    so exactly that many entries are dropped."""
    total = sum(s.numel() for s in scores.values())
    k = count_for(total, ratio)
    if k == 0:
        return {n: torch.ones(s.shape, dtype=torch.bool) for n, s in scores.items()}
    threshold = float(kth_largest_nonnegative(scores, k))
    drop = {n: s.detach().float().clamp(min=0) > threshold for n, s in scores.items()}
    remaining = k - sum(int(d.sum()) for d in drop.values())
    for name, s in scores.items():
        if remaining <= 0:
            break
        ties = (s.detach().float().clamp(min=0) == threshold).reshape(-1).nonzero().squeeze(1)
        take = ties[:remaining]
        drop[name].view(-1)[take] = True
        remaining -= int(take.numel())
    return {n: (~d).cpu() for n, d in drop.items()}


def make_edit(method: str, masks: dict[str, torch.Tensor], cfg: Any, **extra: Any) -> Edit:
    """The Edit of a weight method: masks plus its hyperparameters (and any extra facts)."""
    return Edit(method, {n: m.cpu() for n, m in masks.items()}, {**hparams_of(cfg), **extra})
