"""Crash-safe checkpoints: ``last.ckpt`` refreshed during training, never torn, plus kept epochs.

Lightning's ``ModelCheckpoint`` with ``save_top_k: 0`` writes ``last.ckpt`` only when training ends,
so a run killed before then leaves nothing to resume from. :class:`RunCheckpoint` writes
``<dirpath>/last.ckpt`` at the end of every ``every_n_epochs``-th epoch (and of the last one), and
every ``every_n_steps`` optimizer steps when set. Each write goes to a temporary file in the same
folder, is flushed to disk and then renamed over the old one (``os.replace``), so a kill at any
moment leaves either the previous or the new checkpoint, whole.

Resuming from an epoch-end ``last.ckpt`` is exact: Lightning restores the model, optimizer, loop
counters and callback states (evaluation history, regularizer buffers), and the data order is
derived from (seed, epoch). Resuming from a mid-epoch (step-interval) ``last.ckpt`` is not exact:
the training data loader cannot skip the batches already trained, so Lightning restarts the
interrupted epoch's batch order from its beginning while counting the epoch's remaining batches;
the step interval only bounds how much work a kill can lose.

``keep_epochs`` additionally keeps the checkpoints of the listed epoch labels (the paper unlearns
at four points of training) as ``<dirpath>/epoch=0500.ckpt`` (labels as in
:mod:`memlab.training.epochs`, zero-padded to four digits).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Checkpoint

from memlab.errors import ConfigError
from memlab.training.epochs import numbering_of

LAST = "last.ckpt"


def epoch_checkpoint_name(label: int) -> str:
    """The file name of a kept checkpoint: ``epoch=0500.ckpt``."""
    return f"epoch={label:04d}.ckpt"


def replace_atomically(tmp: Path, path: Path) -> None:
    """Move the finished ``tmp`` over ``path``: a file is flushed and renamed in one step; a
    directory (DeepSpeed's sharded checkpoints) is swapped in with the old one removed after."""
    if tmp.is_dir():
        old = path.with_name(path.name + ".old")
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
        return
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class RunCheckpoint(Checkpoint):
    """Writes ``last.ckpt`` atomically at epoch ends and optionally every N steps; keeps the
    checkpoints of ``keep_epochs`` (see the module docstring)."""

    def __init__(
        self,
        dirpath: str,
        *,
        save_last: bool = True,
        every_n_epochs: int = 1,
        every_n_steps: int = 0,
        keep_epochs: Iterable[int] = (),
    ) -> None:
        if every_n_epochs < 1 or every_n_steps < 0:
            raise ConfigError(
                f"callbacks.model_checkpoint.every_n_epochs={every_n_epochs} must be ≥ 1 and "
                f"every_n_steps={every_n_steps} ≥ 0 (0 = off)"
            )
        self.dirpath = Path(dirpath)
        self.save_last = bool(save_last)
        self.every_n_epochs = int(every_n_epochs)
        self.every_n_steps = int(every_n_steps)
        self.keep_epochs = {int(e) for e in keep_epochs}

    def save(self, trainer: pl.Trainer, name: str) -> Path:
        """``trainer.save_checkpoint`` to a temporary name, then the atomic rename (rank 0)."""
        path = self.dirpath / name
        tmp = path.with_name(f".{name}.tmp")
        if trainer.is_global_zero:
            self.dirpath.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(
            tmp, weights_only=False
        )  # every rank takes part (sharded strategies); ends in a barrier
        if trainer.is_global_zero:
            replace_atomically(tmp, path)
        trainer.strategy.barrier("RunCheckpoint.save")
        return path

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        steps = self.every_n_steps
        if self.save_last and steps and trainer.global_step % steps == 0 and trainer.global_step:
            self.save(trainer, LAST)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        index = trainer.current_epoch
        last_pass = index + 1 >= (trainer.max_epochs or 0)
        if self.save_last and ((index + 1) % self.every_n_epochs == 0 or last_pass):
            self.save(trainer, LAST)
        label = numbering_of(pl_module).label(index)
        if label in self.keep_epochs:
            self.save(trainer, epoch_checkpoint_name(label))
