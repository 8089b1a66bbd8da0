"""LightningModule for causal-LM training of TinyMem models.

AdamW over all parameters (lr 1e-3, betas 0.9/0.98, weight decay 0.1), no schedule, no clipping.
The loss is the mean token cross-entropy over every next-token position, padding included, as in
the reference (deviations.md D12); ``mask_padding: true`` ignores the trailing padding instead.
``train/ppl`` is exp of the pure cross-entropy, without regularizer terms (deviations.md D13).
A non-finite loss stops the run at once with a :class:`~memlab.errors.RunError`.
"""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch import nn

from memlab.errors import RunError
from memlab.metrics.forward import logits_of, token_losses
from memlab.metrics.utility import valid_targets
from memlab.regularizers.base import regularizers_of
from memlab.training.epochs import EpochNumbering


def sequence_losses(
    logits: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """Per-sequence mean next-token cross-entropy [B] (over the ``mask``ed targets when given)."""
    ce = token_losses(logits, x)
    if mask is None:
        return ce.mean(dim=1)
    return (ce * mask).sum(1) / mask.sum(1).clamp(min=1)


class LMModule(pl.LightningModule):
    """Trains ``model`` on (rows, index) batches; regularizer callbacks plug in through
    :class:`memlab.regularizers.base.Regularizer`."""

    def __init__(
        self,
        model: nn.Module | Callable[[], nn.Module],
        optim_cfg,
        pad_id: int,
        *,
        mask_padding: bool = False,
        run_config: dict | None = None,
        numbering: EpochNumbering | None = None,
    ) -> None:
        super().__init__()
        # a factory is called in configure_model (DeepSpeed ZeRO-3 partitions the model as it is built)
        self.model_factory = None if isinstance(model, nn.Module) else model
        self.model = model if isinstance(model, nn.Module) else None
        self.run_config = run_config or {}
        self.optim_cfg = optim_cfg
        self.pad_id = pad_id
        self.mask_padding = mask_padding
        self.numbering = numbering or EpochNumbering()
        self.example_index: torch.Tensor | None = None  # read by example-tied dropout

    def configure_model(self) -> None:
        """Build the model from its factory, once, on the strategy's device / under zero.Init."""
        if self.model is None and self.model_factory is not None:
            self.model = self.model_factory()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return logits_of(self.model, input_ids)

    def regularized_loss(self, seq_loss: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The batch loss after the regularizers' sequence weights and penalties."""
        loss = seq_loss.mean()
        for reg in regularizers_of(self._trainer):
            weights = reg.sequence_weights(self, seq_loss.detach(), index)
            if weights is not None:
                loss = (
                    seq_loss * weights
                ).mean()  # dropped rows count as zeros (deviations.md D27)
        for reg in regularizers_of(self._trainer):
            extra = reg.penalty(self)
            if extra is not None:
                loss = loss + extra
        return loss

    def check_finite(self, loss: torch.Tensor) -> None:
        """Stop the run at once when the loss is NaN or infinite."""
        if not bool(torch.isfinite(loss)):
            epoch = self.numbering.label(self.current_epoch)
            raise RunError(
                f"non-finite loss ({float(loss)}) at epoch {epoch}, step {self.global_step}; "
                f"lower optim.lr (now {self.optim_cfg.lr}) or check the regularizer settings"
            )

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, index = batch
        self.example_index = index
        logits = self(x)
        self.example_index = None
        mask = valid_targets(x, self.pad_id).float() if self.mask_padding else None
        seq_loss = sequence_losses(logits, x, mask)
        loss = self.regularized_loss(seq_loss, index)
        self.check_finite(loss)
        pure = seq_loss.mean()
        with torch.no_grad():
            acc = (logits[:, :-1].argmax(-1) == x[:, 1:]).float().mean()
        self.log_dict(
            {"train/loss": loss, "train/ce": pure, "train/ppl": torch.exp(pure), "train/acc": acc},
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=x.shape[0],
        )
        return loss

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["memlab_config"] = self.run_config  # rebuilds model + data for later tasks

    def configure_optimizers(self):
        cfg = self.optim_cfg
        return torch.optim.AdamW(
            self.parameters(),
            lr=cfg.lr,
            betas=tuple(cfg.betas),
            eps=cfg.eps,
            weight_decay=cfg.weight_decay,
        )
