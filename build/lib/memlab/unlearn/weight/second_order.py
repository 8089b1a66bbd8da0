"""Second Order Unlearning, SOU (new in the paper; OBS saliency with a block empirical-Fisher
inverse as in oBERT / neuralmagic sparseml; unlearning spec §7.4, §15).

Saliency of an MLP entry q: ρ_q = w_q² / (2·[F⁻¹]_qq) — the increase of the forget loss when w_q is
removed (Optimal Brain Surgeon) — with F = λI + (1/m)·Σ_t g_t g_tᵀ restricted to B×B diagonal blocks
of each flattened tensor (zero-padded to a multiple of B). F⁻¹ is maintained directly by
Sherman–Morrison updates: init (1/λ)·I, then per gradient u = F⁻¹g, F⁻¹ ← F⁻¹ − u uᵀ/(m + gᵀu).
All blocks of a tensor are updated at once as tensor ops on [n_blocks, B, B]. Per tensor, the
⌊numel · ratio⌋ entries of largest saliency are zeroed (weights and biases).

Difference from the reference (§13 item 9): the reference never zeroed gradients, so its "g_t"
were running sums over all earlier backward passes, and it repeated the m backward passes for
every parameter tensor (embeddings and attention included, whose masks it then discarded). Here
m fresh per-minibatch gradients of the forget loss are computed once (cycling the forget batches)
and shared by every MLP tensor's Fisher.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from memlab.models.edit import Edit
from memlab.unlearn.losses import model_sequence_losses
from memlab.unlearn.registry import METHODS, UnlearnContext
from memlab.unlearn.weight.common import (
    check_ratio,
    cycle_batches,
    device_of,
    gradients,
    grads_only_for,
    make_edit,
    mlp_parameters,
    per_tensor_masks,
)


class BlockFisherInverse:
    """Inverse of the block-diagonal empirical Fisher λI + (1/m)·Σ g gᵀ of a d-vector, stored as
    [n_blocks, B, B] and updated with one Sherman–Morrison step per gradient."""

    def __init__(
        self,
        numel: int,
        block_size: int,
        damp: float,
        num_grads: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.numel, self.block_size, self.num_grads = numel, block_size, num_grads
        self.n_blocks = math.ceil(numel / block_size)
        eye = torch.eye(block_size, device=device, dtype=dtype) / damp
        self.inverse = eye.expand(self.n_blocks, block_size, block_size).clone()

    def blocks(self, flat: torch.Tensor) -> torch.Tensor:
        """``flat`` [d] zero-padded and cut into [n_blocks, B]."""
        padded = flat.new_zeros(self.n_blocks * self.block_size)
        padded[: self.numel] = flat
        return padded.view(self.n_blocks, self.block_size)

    def update(self, grad: torch.Tensor) -> None:
        """F⁻¹ ← F⁻¹ − u uᵀ / (m + gᵀu), u = F⁻¹ g, for every block at once."""
        g = self.blocks(grad.reshape(-1).to(self.inverse.dtype))
        u = torch.bmm(self.inverse, g.unsqueeze(2)).squeeze(2)
        denom = self.num_grads + (g * u).sum(dim=1)
        self.inverse -= u.unsqueeze(2) * u.unsqueeze(1) / denom.view(-1, 1, 1)

    def diagonal(self) -> torch.Tensor:
        """[F⁻¹]_qq for q = 0 … d−1."""
        return self.inverse.diagonal(dim1=1, dim2=2).reshape(-1)[: self.numel]

    def dense(self) -> torch.Tensor:
        """The full [d, d] block-diagonal inverse (tests only: small d)."""
        full = torch.block_diag(*self.inverse)
        return full[: self.numel, : self.numel]


def obs_saliency(weight: torch.Tensor, inverse_diag: torch.Tensor) -> torch.Tensor:
    """ρ = w² / (2·[F⁻¹]_qq), shaped like ``weight``."""
    w = weight.detach().reshape(-1).to(inverse_diag.dtype)
    return (w.square() / (2.0 * inverse_diag)).view(weight.shape)


def fisher_inverses(
    model: nn.Module, forget: torch.Tensor, cfg: Any, seed: int
) -> dict[str, BlockFisherInverse]:
    """One block Fisher inverse per MLP tensor from ``num_grads`` fresh forget-batch gradients."""
    params = mlp_parameters(model)
    device = device_of(model)
    inverses = {
        n: BlockFisherInverse(p.numel(), cfg.block_size, cfg.damp, cfg.num_grads, device)
        for n, p in params.items()
    }
    batches = cycle_batches(forget, cfg.batch_size, seed, False, device)
    with grads_only_for(model, params):
        for _ in range(cfg.num_grads):
            loss = model_sequence_losses(model, next(batches)).mean()
            for name, g in gradients(loss, params).items():
                inverses[name].update(g)
    return inverses


@METHODS.register("second_order")
def second_order(
    model: nn.Module, forget: torch.Tensor, retain: torch.Tensor, cfg: Any, ctx: UnlearnContext
) -> Edit:
    """Zero, per MLP tensor, the ⌊numel · ratio⌋ entries of largest OBS saliency."""
    ratio = check_ratio(cfg.ratio)
    params = mlp_parameters(model)
    inverses = fisher_inverses(model, forget, cfg, ctx.seed)
    saliency = {n: obs_saliency(params[n], inv.diagonal()) for n, inv in inverses.items()}
    return make_edit("second_order", per_tensor_masks(saliency, ratio), cfg)
