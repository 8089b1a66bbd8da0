"""LightningModule for causal-LM training of TinyMem models (spec §9).

AdamW over all parameters (lr 1e-3, betas 0.9/0.98, weight decay 0.1), no schedule, no clipping.
The loss is the mean token cross-entropy over every next-token position, padding included, as in
the reference (Q12); ``mask_padding: true`` ignores the trailing padding instead.
"""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch import nn

from memlab.metrics.forward import logits_of, token_losses
from memlab.metrics.utility import valid_targets
from memlab.regularizers.base import regularizers_of


def sequence_losses(
    logits: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence mean CE [B] and the token-level CE [B, T−1] of next-token prediction."""
    ce = token_losses(logits, x)
    if mask is None:
        return ce.mean(dim=1), ce
    return (ce * mask).sum(1) / mask.sum(1).clamp(min=1), ce


class LMModule(pl.LightningModule):
    """Trains ``model`` on (rows, index) batches; regularizer callbacks plug in through
    :class:`memlab.regularizers.base.Regularizer`."""

    def __init__(
        self,
        model: nn.Module | Callable[[], nn.Module],
        optim_cfg,
        pad_id: int,
        mask_padding: bool = False,
        run_config: dict | None = None,
    ) -> None:
        super().__init__()
        # a factory is called in configure_model (DeepSpeed ZeRO-3 partitions the model as it is built)
        self.model_factory = None if isinstance(model, nn.Module) else model
        self.model = model if isinstance(model, nn.Module) else None
        self.run_config = run_config or {}
        self.optim_cfg = optim_cfg
        self.pad_id = pad_id
        self.mask_padding = mask_padding
        self.example_index: torch.Tensor | None = None  # read by example-tied dropout

    def configure_model(self) -> None:
        """Build the model from its factory, once, on the strategy's device / under zero.Init."""
        if self.model is None and self.model_factory is not None:
            self.model = self.model_factory()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return logits_of(self.model, input_ids)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, index = batch
        self.example_index = index
        logits = self(x)
        self.example_index = None
        mask = valid_targets(x, self.pad_id).float() if self.mask_padding else None
        seq_loss, ce = sequence_losses(logits, x, mask)
        pure = seq_loss.mean()
        loss = pure
        for reg in regularizers_of(self._trainer):
            weights = reg.sequence_weights(self, seq_loss.detach(), index)
            if weights is not None:
                loss = (seq_loss * weights).mean()  # dropped rows count as zeros (Q21)
        for reg in regularizers_of(self._trainer):
            extra = reg.penalty(self)
            if extra is not None:
                loss = loss + extra
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
