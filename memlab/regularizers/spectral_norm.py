"""Spectral-norm regularization (Yoshida & Miyato 2017, "Spectral norm regularization
for improving the generalizability of deep learning").

Every weight matrix except embeddings, layer norms and biases gets a persistent left singular vector
``u``; each training step runs one power iteration without gradient (v = Wᵀu/‖·‖, u = Wv/‖·‖) and
adds ``(λ/2)·Σσ`` with σ = uᵀWv, differentiable in W only. Attention projections are split as in the
reference: the fused QKV projection into 3·n_head per-head blocks and the attention output into
n_head blocks along its output dimension (18 σ per GPT-2 block).

Differences from the reference:

- ``squared: true`` uses Σσ², the form of the cited paper; the default Σσ is the reference's
  (deviations.md D24).
- ``attn_out_split: input`` splits the attention output by its input rows, i.e. truly per head; the
  default ``output`` is the reference's split (deviations.md D25).
- The u vectors are drawn from a local generator seeded by the run seed (not the global RNG), live in
  this callback's state and are saved in and restored from checkpoints; the reference re-randomised
  them on resume (deviations.md D26).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from memlab.errors import ConfigError
from memlab.models.mlp_adapter import detect_arch
from memlab.regularizers.base import Regularizer

# Per architecture: attention parameter suffix → (split axis of the stored weight, blocks per head).
# GPT-2 Conv1D weights are (in, out); GPT-NeoX Linear weights are (out, in).
_ATTENTION_SPLITS = {
    "gpt2": {
        "attn.c_attn.weight": ("cols", 3),
        "attn.c_proj.weight": {"output": ("cols", 1), "input": ("rows", 1)},
    },
    "gpt_neox": {
        "attention.query_key_value.weight": ("rows", 3),
        "attention.dense.weight": {"output": ("rows", 1), "input": ("cols", 1)},
    },
}


@dataclass(frozen=True)
class MatrixBlocks:
    """A weight matrix viewed as ``n`` equal blocks split along its rows or columns."""

    name: str
    axis: str  # "rows" | "cols" | "none"
    n: int

    def view(self, weight: torch.Tensor) -> torch.Tensor:
        """The blocks as one batch [n, rows, cols] (a differentiable view of ``weight``)."""
        rows, cols = weight.shape
        if self.axis == "cols":
            return weight.reshape(rows, self.n, cols // self.n).transpose(0, 1)
        if self.axis == "rows":
            return weight.reshape(self.n, rows // self.n, cols)
        return weight.unsqueeze(0)


def matrix_blocks(
    model: nn.Module, n_head: int, attn_out_split: str = "output"
) -> list[MatrixBlocks]:
    """The regularized matrices of ``model``: every 2-D parameter except embedding tables."""
    if attn_out_split not in ("output", "input"):
        raise ConfigError(
            f"regularizer.attn_out_split={attn_out_split!r}; allowed: output (reference), input"
        )
    embeddings = {
        id(m.weight)
        for m in model.modules()
        if isinstance(m, nn.Embedding) and m.weight is not None
    }
    try:
        splits = _ATTENTION_SPLITS[detect_arch(model)]
    except Exception:  # an unknown architecture: whole matrices only
        splits = {}
    out = []
    for name, param in model.named_parameters():
        if param.dim() != 2 or id(param) in embeddings:
            continue
        axis, per_head = "none", 0
        for suffix, rule in splits.items():
            if name.endswith(suffix):
                axis, per_head = rule[attn_out_split] if isinstance(rule, dict) else rule
        out.append(MatrixBlocks(name, axis, per_head * n_head if per_head else 1))
    return out


@torch.no_grad()
def power_iteration(
    w: torch.Tensor, u: torch.Tensor, steps: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` power iterations on a batch of matrices w [b, r, c] from left vectors u [b, r]."""
    v = u.new_zeros(w.shape[0], w.shape[2])
    for _ in range(max(1, steps)):
        v = F.normalize(torch.bmm(u.unsqueeze(1), w).squeeze(1), dim=-1, eps=1e-12)
        u = F.normalize(torch.bmm(w, v.unsqueeze(2)).squeeze(2), dim=-1, eps=1e-12)
    return u, v


def sigma(w: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """σ ≈ uᵀWv per block [b]; the gradient flows through ``w`` only (u, v are constants)."""
    return torch.bmm(torch.bmm(u.detach().unsqueeze(1), w), v.detach().unsqueeze(2)).flatten()


class SpectralNorm(Regularizer):
    """Adds (λ/2)·Σσ (or Σσ² with ``squared``) over every regularized (sub-)matrix each step."""

    def __init__(
        self,
        lam: float = 0.01,
        *,
        squared: bool = False,
        n_power_iter: int = 1,
        n_head: int | None = None,
        attn_out_split: str = "output",
        seed: int = 0,
    ) -> None:
        self.lam = float(lam)
        self.squared = bool(squared)
        self.n_power_iter = int(n_power_iter)
        self.n_head = n_head
        self.attn_out_split = attn_out_split
        self.seed = int(seed)
        self.u: dict[str, torch.Tensor] = {}
        self._blocks: list[MatrixBlocks] | None = None

    def blocks(self, model: nn.Module) -> list[MatrixBlocks]:
        if self._blocks is None:
            n_head = self.n_head or getattr(getattr(model, "config", None), "n_head", None)
            n_head = n_head or getattr(model.config, "num_attention_heads", 1)
            self._blocks = matrix_blocks(model, int(n_head), self.attn_out_split)
        return self._blocks

    def init_vectors(self, model: nn.Module) -> None:
        """Draw missing u vectors ~ N(0, I) from a local generator (restored ones are kept)."""
        g = torch.Generator().manual_seed(self.seed)
        params = dict(model.named_parameters())
        for blk in self.blocks(model):
            shape = blk.view(params[blk.name]).shape[:2]
            fresh = torch.randn(shape, generator=g)  # drawn for every block: a stable stream
            self.u.setdefault(blk.name, F.normalize(fresh, dim=-1))

    def sigmas(self, model: nn.Module) -> torch.Tensor:
        """One power-iteration step for every block, then all σ concatenated (differentiable in W)."""
        if not self.u:
            self.init_vectors(model)
        params = dict(model.named_parameters())
        out = []
        for blk in self.blocks(model):
            w = blk.view(params[blk.name])
            u = self.u[blk.name].to(device=w.device, dtype=w.dtype)
            u, v = power_iteration(w, u, self.n_power_iter)
            self.u[blk.name] = u
            out.append(sigma(w, u, v))
        return torch.cat(out)

    def penalty(self, module: pl.LightningModule) -> torch.Tensor:
        s = self.sigmas(module.model)
        total = (s * s).sum() if self.squared else s.sum()
        module.log("reg/spectral_sum", total.detach(), on_step=False, on_epoch=True)
        return 0.5 * self.lam * total

    def state_dict(self) -> dict:
        return {"u": {k: v.detach().cpu().clone() for k, v in self.u.items()}}

    def load_state_dict(self, state_dict: dict) -> None:
        self.u = {k: v.clone() for k, v in state_dict.get("u", {}).items()}
