"""Epoch numbering (``train.compat``) and a progress bar that counts epochs the same way.

``fixed`` (default): epoch e is the model after e full passes over the data; a run of
``trainer.max_epochs = E`` makes E passes and evaluates after passes every, 2·every, …, E.
``reference``: the reference's loop runs epochs 0 … E inclusive, i.e. E + 1 passes, and evaluates
after passes 1, every + 1, …, E + 1, labelled 0, every, …, E (deviations.md D10). For the paper's
math noise runs (E = 3500, every 50): fixed evaluates after 50, 100, …, 3500 passes; reference
after 1, 51, …, 3501 passes, labelled 0, 50, …, 3500.

Every label memlab shows (evaluation history, log lines, kept checkpoints, the progress bar, a
non-finite-loss error) is ``label(epoch_index)`` of the epoch that was just trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar

from memlab.errors import ConfigError

COMPAT = ("fixed", "reference")


@dataclass(frozen=True)
class EpochNumbering:
    """Maps Lightning's 0-based epoch index to memlab's epoch label and back."""

    compat: str = "fixed"

    def __post_init__(self) -> None:
        if self.compat not in COMPAT:
            raise ConfigError(
                f"train.compat={self.compat}: unknown numbering; known: fixed, reference"
            )

    @property
    def offset(self) -> int:
        """label − epoch index: 1 (fixed, label = passes done) or 0 (reference)."""
        return 1 if self.compat == "fixed" else 0

    def label(self, epoch_index: int) -> int:
        """The label of the epoch with Lightning index ``epoch_index`` once it is trained."""
        return epoch_index + self.offset

    def passes(self, last_label: int) -> int:
        """Training passes of a run whose last epoch label is ``last_label`` (``trainer.max_epochs``)."""
        return last_label + 1 - self.offset

    def last_label(self, passes: int) -> int:
        """The inverse of :meth:`passes`."""
        return passes - 1 + self.offset

    def due(self, epoch_index: int, every: int, total_passes: int) -> bool:
        """Whether the epoch is an evaluation point: its label is a multiple of ``every``, or it is
        the last pass of the run."""
        return self.label(epoch_index) % every == 0 or epoch_index + 1 >= total_passes


def numbering_of(pl_module: pl.LightningModule | None) -> EpochNumbering:
    """The module's numbering (a module without one counts the fixed way)."""
    return getattr(pl_module, "numbering", None) or EpochNumbering()


class EpochProgressBar(RichProgressBar):
    """Rich progress bar that shows ``Epoch <label>/<last label>`` with memlab's epoch labels
    (Lightning's own bar counts 0 … max_epochs − 1, one behind memlab's log in fixed numbering)."""

    def _get_train_description(self, current_epoch: int) -> str:
        numbering = numbering_of(self.trainer.lightning_module)
        text = f"Epoch {numbering.label(current_epoch)}"
        if self.trainer.max_epochs is not None:
            text += f"/{numbering.last_label(self.trainer.max_epochs)}"
        return f"{text:{len(self.validation_description)}}"
