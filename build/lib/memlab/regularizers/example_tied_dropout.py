"""Example-tied dropout (spec §11.1; Maini et al. 2023, "Can neural network memorization be
localized?"): each training example may only use a fixed share of the hidden units.

The first ⌊p_fixed·H⌋ hidden channels are "generalization units" shared by every example; each
example additionally owns a fixed random set of round(p_mem·(H − n_fixed)) of the remaining
"memorization units". In training, every block's input (the residual stream, before ``ln_1``) is
multiplied by the example's 0/1 mask, unscaled. At evaluation and generation, no index is needed: the
memorization units are dropped and the generalization units scaled by (p_fixed + p_mem)/p_fixed.
The masks act through forward pre-hooks on the stock HF transformer blocks, which read the batch's
row indices from ``pl_module.example_index`` (set by ``LMModule.training_step``).

Differences from the reference:

- Q6: the mask is over hidden channels (the reference masked the sequence axis);
  ``compat: reference`` restores that variant (keep the first ⌊p_fixed·T⌋ positions, each other
  position kept with probability p_mem per example; at evaluation zero positions ≥ ⌊p_fixed·T⌋ of
  the current length and scale the rest).
- Q7, Q8: masks come from a counter-based hash of (seed, example index, unit), so the same example
  gets the same mask every epoch, on every device, without a cache and without touching the global
  RNG. The reference filled its mask cache on the first batch only (all-zero masks for every other
  example) and reseeded the global RNG per example.
- Q7b: evaluation and generation need no index.
- The memorization share is exact per example (the reference drew Bernoulli(p_mem) per unit);
  ``compat: reference`` keeps the Bernoulli draw.
"""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch import nn

from memlab.errors import ConfigError
from memlab.models.mlp_adapter import LAYOUTS, detect_arch
from memlab.regularizers.base import Regularizer
from memlab.regularizers.build import REGULARIZERS

_MASK32 = 0xFFFFFFFF
_MIX = 0x45D9F3B  # < 2**27: products of 32-bit values stay inside int64


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mixing function on int64 tensors holding values in [0, 2**32)."""
    x = (((x >> 16) ^ x) * _MIX) & _MASK32
    x = (((x >> 16) ^ x) * _MIX) & _MASK32
    return (x >> 16) ^ x


def unit_uniforms(seed: int, index: torch.Tensor, n: int) -> torch.Tensor:
    """Deterministic uniforms [B, n] in [0, 1) for (seed, example index, unit); no RNG state."""
    base = _hash32(torch.tensor(int(seed) & _MASK32, device=index.device))
    rows = _hash32((index.long() & _MASK32) ^ base)
    units = _hash32(torch.arange(n, device=index.device) + 0x5BD1E995)
    return _hash32(rows[:, None] ^ units[None, :]).double() / 2.0**32


class ExampleTiedMasks:
    """The masks of example-tied dropout over ``n`` units (hidden channels or positions)."""

    def __init__(self, p_fixed: float = 0.2, p_mem: float = 0.1, seed: int = 0) -> None:
        if not 0.0 < p_fixed <= 1.0 or not 0.0 <= p_mem <= 1.0:
            raise ConfigError(
                f"regularizer.p_fixed={p_fixed} must lie in (0, 1] and p_mem={p_mem} in [0, 1]"
            )
        self.p_fixed, self.p_mem, self.seed = float(p_fixed), float(p_mem), int(seed)

    def n_fixed(self, n: int) -> int:
        return int(self.p_fixed * n)

    @property
    def eval_scale(self) -> float:
        return (self.p_fixed + self.p_mem) / self.p_fixed

    def train_mask(self, index: torch.Tensor, n: int, exact: bool = True) -> torch.Tensor:
        """0/1 masks [B, n]: the shared units plus each example's own memorization units
        (exactly round(p_mem·rest) of them, or Bernoulli(p_mem) per unit when ``exact`` is false)."""
        fixed = self.n_fixed(n)
        u = unit_uniforms(self.seed, index, n)[:, fixed:]
        if exact:
            k = round(self.p_mem * (n - fixed))
            mem = torch.zeros_like(u, dtype=torch.bool)
            mem.scatter_(1, u.topk(k, dim=1, largest=False).indices, True)
        else:
            mem = u < self.p_mem
        shared = torch.ones(index.shape[0], fixed, dtype=torch.bool, device=index.device)
        return torch.cat([shared, mem], dim=1)

    def eval_mask(self, n: int, device: torch.device | None = None) -> torch.Tensor:
        """[n]: generalization units scaled by (p_fixed + p_mem)/p_fixed, the others zero."""
        out = torch.zeros(n, device=device)
        out[: self.n_fixed(n)] = self.eval_scale
        return out


def transformer_blocks(model: nn.Module) -> nn.ModuleList:
    """The transformer blocks of a GPT-2 or GPT-NeoX model (the MLP adapter's layouts)."""
    return model.get_submodule(LAYOUTS[detect_arch(model)][0])


class ExampleTiedDropout(Regularizer):
    """Attaches the masks to every transformer block's input at fit start."""

    HANDLES = "_memlab_example_tied_dropout"  # model attribute: hooks attached once per model

    def __init__(
        self, p_fixed: float = 0.2, p_mem: float = 0.1, seed: int = 0, compat: str = "none"
    ) -> None:
        if compat not in ("none", "reference"):
            raise ConfigError(f"regularizer.compat={compat!r}; allowed: none, reference")
        self.masks = ExampleTiedMasks(p_fixed, p_mem, seed)
        self.sequence_axis = compat == "reference"

    def apply(
        self, hidden: torch.Tensor, index: torch.Tensor | None, training: bool
    ) -> torch.Tensor:
        """``hidden`` [B, T, H] masked for the examples ``index`` (training) or for evaluation."""
        axis = 1 if self.sequence_axis else 2
        n = hidden.shape[axis]
        if training and index is not None:
            mask = self.masks.train_mask(index.to(hidden.device), n, exact=not self.sequence_axis)
        else:
            mask = self.masks.eval_mask(n, hidden.device)[None]
        mask = mask.to(hidden.dtype)
        return hidden * (mask[:, :, None] if self.sequence_axis else mask[:, None, :])

    def attach(self, model: nn.Module, index_of: Callable[[], torch.Tensor | None]) -> None:
        """Register the pre-hooks on ``model``'s blocks (once; re-attaching replaces them)."""
        for handle in getattr(model, self.HANDLES, []):
            handle.remove()

        def hook(block: nn.Module, args: tuple, kwargs: dict):
            if args:
                return (self.apply(args[0], index_of(), block.training), *args[1:]), kwargs
            kwargs["hidden_states"] = self.apply(
                kwargs["hidden_states"], index_of(), block.training
            )
            return args, kwargs

        handles = [
            blk.register_forward_pre_hook(hook, with_kwargs=True)
            for blk in transformer_blocks(model)
        ]
        setattr(model, self.HANDLES, handles)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.attach(pl_module.model, lambda: getattr(pl_module, "example_index", None))


@REGULARIZERS.register("example_tied_dropout")
def build_example_tied_dropout(cfg, seed: int) -> list[pl.Callback]:
    return [ExampleTiedDropout(cfg.p_fixed, cfg.p_mem, seed, cfg.compat)]
