"""The ``LightningDataModule`` over TinyMem data.

Batches are ``(rows [B, T], row_index [B])``: the row index lets example-tied dropout find its
per-example mask. Shuffling is derived from (seed, epoch) by a local generator, so a run resumed
from ``last.ckpt`` sees exactly the batches an uninterrupted run would (deviations.md D11).
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from memlab.data.build import load_data
from memlab.data.lm_data import LMData


class IndexedRows(Dataset):
    """Rows addressed by a whole batch of indices at once (no per-row collation)."""

    def __init__(self, rows: torch.Tensor) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def __getitem__(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.rows[index], index


class ShuffledBatches(Sampler):
    """Yields index batches of a fresh permutation per epoch from ``seed`` and the epoch number."""

    def __init__(self, n: int, batch_size: int, *, seed: int, shuffle: bool = True) -> None:
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # called by Lightning at every epoch start
        self.epoch = epoch

    def __len__(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        yield from order.split(self.batch_size)


def batch_loader(
    rows: torch.Tensor, batch_size: int, seed: int, shuffle: bool = True
) -> DataLoader:
    """A DataLoader of (rows, index) batches over ``rows``."""
    sampler = ShuffledBatches(rows.shape[0], batch_size, seed=seed, shuffle=shuffle)
    return DataLoader(IndexedRows(rows), sampler=sampler, batch_size=None)


class LMDataModule(pl.LightningDataModule):
    """Loads (or builds and caches) the run's data; the training rows are its only dataloader —
    evaluation runs in a callback on the named test and artifact sets."""

    def __init__(self, cfg, data: LMData | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.data = data

    def prepare_data(self) -> None:
        if self.data is None:
            self.data = load_data(self.cfg)

    def setup(self, stage: str | None = None) -> None:
        self.prepare_data()

    def train_rows(self) -> torch.Tensor:
        return self.data.train

    def train_dataloader(self) -> DataLoader:
        return batch_loader(self.train_rows(), self.cfg.train.batch_size, self.cfg.seed)
