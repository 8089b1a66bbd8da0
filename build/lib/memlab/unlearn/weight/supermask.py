"""Supermask training shared by Subnet and BalancedSubnet (edge-popup, Ramanujan et al. 2020,
turned to unlearning by the paper; unlearning spec §7.5, §7.6, §15).

Every MLP weight matrix W gets a learnable score tensor S of its shape; the forward pass uses
W ⊙ M(S), where M drops exactly the k = ⌊numel · ratio⌋ entries of smallest |S| (per matrix) and the
backward pass is straight-through (∂M/∂|S| := identity). Only the scores train (SGD with momentum
and weight decay); W and the biases stay frozen, biases are never masked. The final mask becomes
the Edit.

Masking is a ``torch.nn.utils.parametrize`` parametrization of ``weight``, so the model's modules
are neither replaced nor transposed and GPT-2 ``Conv1D`` and GPT-NeoX ``Linear`` layers work alike
(the reference swapped in its own layers with hard-coded TinyMem sizes and saved Pythia weights
transposed under the original names, §13 item 12). Training is a :class:`LightningModule` run by a
Lightning ``Trainer`` (so trainer presets, e.g. DeepSpeed, can drive it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn.utils import parametrize

from memlab.data.datamodule import batch_loader
from memlab.models.mlp_adapter import MLPAdapter
from memlab.unlearn.losses import model_sequence_losses
from memlab.unlearn.weight.common import count_for

# (per-sequence losses [B], is-forget flags [B]) → scalar objective to minimise
Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


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
        self.k = count_for(weight.numel(), ratio)

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
        self.flags = {p: p.requires_grad for p in self.model.parameters()}
        for p in self.model.parameters():
            p.requires_grad_(False)
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
        for p, flag in self.flags.items():
            p.requires_grad_(flag)


class SupermaskModule(pl.LightningModule):
    """Trains only the supermask scores of ``model`` on (rows, is_forget) batches."""

    def __init__(
        self, model: nn.Module, scores: list[nn.Parameter], objective: Objective, opt
    ) -> None:
        super().__init__()
        self.model = model
        self.score_params = scores
        self.objective = objective
        self.opt = opt

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        rows, is_forget = batch
        loss = self.objective(model_sequence_losses(self.model, rows), is_forget)
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
    """Batches (rows, is_forget) of forget rows followed by retain rows, from ``batch_loader``."""

    def __init__(
        self, rows: torch.Tensor, n_forget: int, batch_size: int, seed: int, shuffle: bool
    ):
        self.loader = batch_loader(rows, batch_size, seed, shuffle)
        self.n_forget = n_forget
        self.epoch = 0

    def __iter__(self):
        self.loader.sampler.set_epoch(self.epoch)  # a fresh order every epoch
        self.epoch += 1
        for rows, index in self.loader:
            yield rows, index < self.n_forget


def trainer_for(epochs: int, trainer_cfg: dict[str, Any] | None) -> pl.Trainer:
    """A quiet Lightning Trainer (no logger, checkpoints or progress bar) for ``epochs`` epochs;
    ``trainer_cfg`` (the run's trainer preset) supplies accelerator, devices, precision, strategy."""
    from memlab.runs import trainer_kwargs

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
    objective: Objective,
    cfg: Any,
    seed: int,
    shuffle: bool,
    trainer_cfg: dict[str, Any] | None = None,
) -> dict[str, torch.Tensor]:
    """Train supermask scores for ``cfg.epochs`` epochs; return the final keep-mask per MLP weight
    matrix. The model is left exactly as it was (parametrizations removed, flags restored)."""
    rows = torch.cat([forget, retain])
    data = FlaggedRows(rows, len(forget), cfg.batch_size, seed, shuffle)
    loader = torch.utils.data.DataLoader(data, batch_size=None)
    opt = {k: float(cfg[k]) for k in ("lr", "momentum", "weight_decay")}
    was_training = model.training
    model.train()  # as the reference (TinyMem and Pythia have no dropout: only the mode flag)
    with Supermasks(model, cfg.ratio, seed) as masks:
        module = SupermaskModule(model, masks.scores(), objective, opt)
        with torch.enable_grad():
            trainer_for(int(cfg.epochs), trainer_cfg).fit(module, train_dataloaders=loader)
        keep = masks.keep_masks()
    model.train(was_training)
    return keep
