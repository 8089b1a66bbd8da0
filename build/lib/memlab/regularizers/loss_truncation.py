"""Loss truncation (spec §11.2; Kang & Hashimoto 2020, "Improved natural language generation via
loss truncation"): drop the sequences whose loss lies in the top ``dropc`` fraction.

Per-sequence losses go into a ring buffer of the last ``buffer_size`` (10,000) values. Once
``count ≥ max(buffer_size, min_count)`` samples were seen, the cut-off is the (1 − dropc) quantile of
the buffer (linear interpolation, as ``numpy.percentile``), refreshed when more than ``recompute``
samples arrived since the last refresh; a sequence is kept iff its loss < cut-off. The training
loss is the mean over the **whole** batch of loss × keep, so dropped rows count as zeros (Q21 —
kept as in the reference).

Differences from the reference (Q14, Q21): the buffer write and the mask are vectorised on the loss's
device (the reference pushed CUDA scalars one by one, one host sync each), and the buffer, counters
and cut-off are callback state saved in checkpoints (the reference lost them on resume).
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from memlab.errors import ConfigError
from memlab.regularizers.base import Regularizer
from memlab.regularizers.build import REGULARIZERS

NO_CUTOFF = 1e8  # the reference's initial cut-off: nothing is dropped before the first refresh


class LossTruncation(Regularizer):
    """Keep-weights (0/1) for per-sequence losses from a running quantile."""

    def __init__(
        self,
        dropc: float = 0.4,
        buffer_size: int = 10_000,
        min_count: int = 10_000,
        recompute: int = 10_000,
    ) -> None:
        if not 0.0 <= dropc <= 1.0:
            raise ConfigError(f"regularizer.dropc={dropc} must lie in [0, 1]")
        if buffer_size < 1:
            raise ConfigError(f"regularizer.buffer_size={buffer_size} must be ≥ 1")
        self.keep = 1.0 - float(dropc)
        self.min_count = int(min_count)
        self.recompute = int(recompute)
        self.buffer = torch.zeros(int(buffer_size))
        self.cutoff = torch.tensor(NO_CUTOFF)
        self.count = 0  # samples seen
        self.since = 0  # samples since the last cut-off refresh

    @property
    def warm(self) -> bool:
        return self.count >= max(self.buffer.numel(), self.min_count)

    def record(self, losses: torch.Tensor) -> None:
        """Write a batch of losses into the ring buffer at the cursor (count mod size)."""
        size = self.buffer.numel()
        self.buffer = self.buffer.to(losses.device)
        self.cutoff = self.cutoff.to(losses.device)
        tail = losses[-size:]  # a batch larger than the buffer: only its last values survive
        start = self.count + losses.numel() - tail.numel()
        self.buffer[(start + torch.arange(tail.numel(), device=losses.device)) % size] = tail
        self.count += losses.numel()
        self.since += losses.numel()

    def update(self, losses: torch.Tensor) -> torch.Tensor:
        """Record a batch of per-sequence losses [B]; its keep-weights [B] (1 = kept)."""
        losses = losses.detach().float().flatten()
        self.record(losses)
        if not self.warm:
            return torch.ones_like(losses)
        if self.since > self.recompute:
            self.cutoff = torch.quantile(self.buffer, self.keep)
            self.since = 0
        return (losses < self.cutoff).float()

    def sequence_weights(
        self, module: pl.LightningModule, seq_loss: torch.Tensor, index: torch.Tensor
    ) -> torch.Tensor:
        weights = self.update(seq_loss)
        module.log("reg/kept_frac", weights.mean(), on_step=False, on_epoch=True)
        return weights.to(seq_loss.dtype)

    def state_dict(self) -> dict:
        return {
            "buffer": self.buffer.detach().cpu().clone(),
            "cutoff": self.cutoff.detach().cpu().clone(),
            "count": self.count,
            "since": self.since,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self.buffer = state_dict["buffer"].clone()
        self.cutoff = state_dict["cutoff"].clone()
        self.count = int(state_dict["count"])
        self.since = int(state_dict["since"])


@REGULARIZERS.register("loss_truncation")
def build_loss_truncation(cfg, seed: int) -> list[pl.Callback]:
    return [LossTruncation(cfg.dropc, cfg.buffer_size, cfg.min_count, cfg.recompute)]
