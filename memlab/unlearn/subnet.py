"""Subnet and BalancedSubnet (new in the paper; BalancedSubnet is its headline method): learn a
supermask over the MLP weight matrices that drops exactly ⌊numel · ratio⌋ entries per matrix, so
that the memorized sequences become unlikely. They differ only in their data and objective:

- ``subnet``: gradient *ascent* on the forget loss, loss = −mean ℓ over a forget batch (the
  balanced loss below with α = 0 and no retain rows);
- ``balanced_subnet``: shuffled batches mixing forget and retain rows,
  loss = −(1−α)·mean_forget ℓ + α·mean_retain ℓ (α = ``loss_weighting``), so the mask raises the
  forget loss while keeping the retain loss low.

Supermask (edge-popup, Ramanujan et al. 2020, turned to unlearning by the paper): every MLP weight
matrix W gets a learnable score tensor S of its shape; the forward pass uses W ⊙ M(S), where M drops
exactly the k = ⌊numel · ratio⌋ entries of smallest |S| (per matrix) and the backward pass is
straight-through (∂M/∂|S| := identity). Only the scores train (SGD with momentum and weight
decay); W and the biases stay frozen, biases are never masked. The final mask becomes the Edit.
Masking is a ``torch.nn.utils.parametrize`` parametrization of ``weight``, so GPT-2 ``Conv1D`` and
GPT-NeoX ``Linear`` layers work alike (deviations.md D46). Training is a :class:`LightningModule`
run by a Lightning ``Trainer`` (so trainer presets, e.g. DeepSpeed, can drive it).

Differences from the reference: deviations.md D45 (``compat: reference`` keeps Subnet's forget
loader unshuffled), D47, D48.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn.utils import parametrize

from memlab.models.edit import Edit
from memlab.models.mlp_adapter import MLPAdapter
from memlab.runs import trainer_kwargs
from memlab.unlearn.common import (
    UnlearnContext,
    count_of,
    index_batches,
    make_edit,
    sequence_losses,
    trainable_only,
)


class TopKMask(torch.autograd.Function):
    """Mask that zeroes the ``k`` smallest entries of ``magnitude``; straight-through backward."""

    @staticmethod
    def forward(ctx, magnitude: torch.Tensor, k: int) -> torch.Tensor:
        mask = torch.ones_like(magnitude)
        if k > 0:
            drop = magnitude.reshape(-1).topk(k, largest=False).indices
            mask.view(-1)[drop] = 0
        return mask

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def score_bound(weight: torch.Tensor, in_out_layout: bool) -> float:
    """1/√fan with fan = the layer's output width: the bound of ``kaiming_uniform_(a=√5)`` on a score
    tensor in GPT-2's (in, out) layout, as the reference initialises it for every architecture."""
    fan = weight.shape[1] if in_out_layout else weight.shape[0]
    return 1.0 / math.sqrt(fan)


class SupermaskWeight(nn.Module):
    """Parametrization W ↦ W ⊙ M(S) with learnable scores S."""

    def __init__(self, weight: torch.Tensor, ratio: float, bound: float, generator) -> None:
        super().__init__()
        init = torch.rand(weight.shape, generator=generator, dtype=torch.float32) * 2 - 1
        self.scores = nn.Parameter((init * bound).to(weight.device))
        self.k = count_of(weight.numel(), ratio)

    def mask(self) -> torch.Tensor:
        return TopKMask.apply(self.scores.abs(), self.k)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask().to(weight.dtype)

    def keep_mask(self) -> torch.Tensor:
        """The final keep-mask (bool) for the Edit."""
        return self.mask().detach().bool().cpu()


class Supermasks:
    """Attaches a :class:`SupermaskWeight` to every MLP weight matrix and removes them again."""

    def __init__(self, model: nn.Module, ratio: float, seed: int) -> None:
        self.model = model
        adapter = MLPAdapter(model)
        generator = torch.Generator().manual_seed(seed)
        self.targets: dict[str, tuple[nn.Module, SupermaskWeight]] = {}
        for block in adapter.blocks:
            for name, module in (
                (block.fc_in_name, block.fc_in),
                (block.fc_out_name, block.fc_out),
            ):
                bound = score_bound(module.weight, block.in_out_layout)
                self.targets[f"{name}.weight"] = (
                    module,
                    SupermaskWeight(module.weight, ratio, bound, generator),
                )

    def __enter__(self) -> Supermasks:
        self.frozen = trainable_only(self.model)
        self.frozen.__enter__()
        for module, mask in self.targets.values():
            parametrize.register_parametrization(module, "weight", mask, unsafe=True)
        return self

    def scores(self) -> list[nn.Parameter]:
        return [mask.scores for _module, mask in self.targets.values()]

    def keep_masks(self) -> dict[str, torch.Tensor]:
        return {name: mask.keep_mask() for name, (_module, mask) in self.targets.items()}

    def __exit__(self, *exc) -> None:
        for module, _mask in self.targets.values():
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
        self.frozen.__exit__(*exc)


class SupermaskModule(pl.LightningModule):
    """Trains only the supermask scores of ``model`` on (rows, is_forget) batches, minimising
    −(1−α)·mean_forget ℓ + α·mean_retain ℓ."""

    def __init__(
        self, model: nn.Module, scores: list[nn.Parameter], *, alpha: float, opt: dict
    ) -> None:
        super().__init__()
        self.model = model
        self.score_params = scores
        self.alpha = alpha
        self.opt = opt

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        rows, is_forget = batch
        loss = signed_group_loss(sequence_losses(self.model, rows), is_forget, self.alpha)
        self.log("unlearn/loss", loss.detach(), prog_bar=False, batch_size=len(rows))
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(
            self.score_params,
            lr=self.opt["lr"],
            momentum=self.opt["momentum"],
            weight_decay=self.opt["weight_decay"],
        )


class FlaggedRows(torch.utils.data.IterableDataset):
    """Batches (rows, is_forget) over forget rows followed by retain rows, in a fresh seeded order
    every epoch (or in order, without ``shuffle``)."""

    def __init__(
        self, rows: torch.Tensor, *, n_forget: int, batch_size: int, seed: int, shuffle: bool
    ):
        self.rows, self.n_forget = rows, n_forget
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
        self.epoch = 0

    def __iter__(self):
        order = index_batches(
            len(self.rows), self.batch_size, seed=self.seed, epoch=self.epoch, shuffle=self.shuffle
        )
        self.epoch += 1
        for index in order:
            yield self.rows[index], index < self.n_forget


def trainer_for(epochs: int, trainer_cfg: dict[str, Any] | None) -> pl.Trainer:
    """A quiet Lightning Trainer (no logger, checkpoints or progress bar) for ``epochs`` epochs;
    ``trainer_cfg`` (the run's trainer preset) supplies accelerator, devices, precision, strategy."""
    kwargs = trainer_kwargs(trainer_cfg) if trainer_cfg else {}
    keep = ("accelerator", "devices", "precision", "strategy", "deterministic", "num_nodes")
    kwargs = {k: v for k, v in kwargs.items() if k in keep}
    return pl.Trainer(
        **kwargs,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def train_supermask(
    model: nn.Module,
    forget: torch.Tensor,
    retain: torch.Tensor,
    *,
    alpha: float,
    cfg: Any,
    ctx: UnlearnContext,
    shuffle: bool,
) -> dict[str, torch.Tensor]:
    """Train supermask scores for ``cfg.epochs`` epochs; return the final keep-mask per MLP weight
    matrix. The model is left exactly as it was (parametrizations removed, flags restored)."""
    rows = torch.cat([forget, retain])
    data = FlaggedRows(
        rows, n_forget=len(forget), batch_size=cfg.batch_size, seed=ctx.seed, shuffle=shuffle
    )
    loader = torch.utils.data.DataLoader(data, batch_size=None)
    opt = {k: float(cfg[k]) for k in ("lr", "momentum", "weight_decay")}
    was_training = model.training
    model.train()  # as the reference (TinyMem and Pythia have no dropout: only the mode flag)
    with Supermasks(model, float(cfg.ratio), ctx.seed) as masks:
        module = SupermaskModule(model, masks.scores(), alpha=alpha, opt=opt)
        with torch.enable_grad():
            trainer_for(int(cfg.epochs), ctx.trainer).fit(module, train_dataloaders=loader)
        keep = masks.keep_masks()
    model.train(was_training)
    return keep


def signed_group_loss(losses: torch.Tensor, is_forget: torch.Tensor, alpha: float) -> torch.Tensor:
    """BalancedSubnet's objective −(1−α)·mean_forget ℓ + α·mean_retain ℓ, with an empty group
    contributing 0 (deviations.md D48)."""
    forget = losses[is_forget]
    retain = losses[~is_forget]
    zero = losses.sum() * 0.0
    forget_term = forget.mean() if forget.numel() else zero
    retain_term = retain.mean() if retain.numel() else zero
    return -(1.0 - alpha) * forget_term + alpha * retain_term


def subnet(
    model: nn.Module, forget: torch.Tensor, retain: torch.Tensor, cfg: Any, ctx: UnlearnContext
) -> Edit:
    """A supermask trained by gradient ascent on the forget loss."""
    keep = train_supermask(
        model,
        forget,
        forget[:0],
        alpha=0.0,
        cfg=cfg,
        ctx=ctx,
        shuffle=cfg.get("compat", "fixed") != "reference",
    )
    return make_edit("subnet", keep, cfg)


def balanced_subnet(
    model: nn.Module, forget: torch.Tensor, retain: torch.Tensor, cfg: Any, ctx: UnlearnContext
) -> Edit:
    """A supermask trained to raise the forget loss and keep the retain loss (weight α)."""
    alpha = float(cfg.loss_weighting)
    keep = train_supermask(model, forget, retain, alpha=alpha, cfg=cfg, ctx=ctx, shuffle=True)
    return make_edit("balanced_subnet", keep, cfg)
