"""Evaluation split across ranks: each rank scores a contiguous run of whole batches, and the
per-row verdicts / per-batch sums are gathered, so every rank returns what one process computes.

Sharding applies when ``torch.distributed`` is initialized with world size > 1 and the model is not
partitioned by DeepSpeed ZeRO-3 (a partitioned forward is itself a collective: every rank must run
the same batches, so there every rank scores every row, as one process does). Shards are whole
batches, so each batch — and each number computed from it — is the one a single process sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

COLLECTIVE_TIMEOUT = timedelta(seconds=60)  # a rank that fails is reported, never waited on forever


@dataclass(frozen=True)
class Shards:
    """``n`` rows in batches of ``batch_size``, dealt to ``world`` ranks as contiguous batch runs
    (the first ``num_batches % world`` ranks get one batch more; a rank may get none)."""

    n: int
    batch_size: int
    rank: int = 0
    world: int = 1

    def batch_range(self, rank: int) -> range:
        """Indices of the batches of ``rank``."""
        num_batches = -(-self.n // self.batch_size)
        base, extra = divmod(num_batches, self.world)
        first = rank * base + min(rank, extra)
        return range(first, first + base + (rank < extra))

    def row_range(self, rank: int) -> range:
        """Indices of the rows of ``rank``."""
        batches = self.batch_range(rank)
        return range(
            min(batches.start * self.batch_size, self.n),
            min(batches.stop * self.batch_size, self.n),
        )

    def batch_starts(self) -> range:
        """First row of each of this rank's batches."""
        rows = self.row_range(self.rank)
        return range(rows.start, rows.stop, self.batch_size)

    @property
    def rows(self) -> range:
        return self.row_range(self.rank)

    def gather_rows(self, local: torch.Tensor) -> torch.Tensor:
        """All ``n`` rows' values (rank order) from this rank's ``local`` [len(rows), ...]."""
        return self._gather(local, [len(self.row_range(r)) for r in range(self.world)])

    def gather_batches(self, local: torch.Tensor) -> torch.Tensor:
        """All batches' values (batch order) from this rank's ``local`` [its batches, ...]."""
        return self._gather(local, [len(self.batch_range(r)) for r in range(self.world)])

    def _gather(self, local: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        if self.world == 1:
            return local
        device = (
            torch.device("cuda", torch.cuda.current_device())
            if dist.get_backend() == "nccl"
            else torch.device("cpu")
        )
        padded = torch.zeros((max(sizes), *local.shape[1:]), dtype=torch.float64, device=device)
        padded[: len(local)] = local.to(device=device, dtype=torch.float64)
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded, async_op=True).wait(timeout=COLLECTIVE_TIMEOUT)
        return torch.cat([p[:size] for p, size in zip(parts, sizes, strict=True)]).to(
            device="cpu", dtype=local.dtype
        )


def shards_for(model: nn.Module, n: int, batch_size: int) -> Shards:
    """This rank's share of ``n`` rows: all of them in one process or under ZeRO-3."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return Shards(n, batch_size)
    if any(hasattr(p, "ds_id") for p in model.parameters()):  # ZeRO-3 partitioned
        return Shards(n, batch_size)
    return Shards(n, batch_size, dist.get_rank(), dist.get_world_size())
