"""Relearning attack: does a short fine-tune bring the forgotten rows back?

The attacker fine-tunes a copy of the audited model for up to ``relearn.steps`` steps on

- ``forget_subset``: a random ``relearn.subset_share`` of the forget rows (a leaked tenth), or
- ``clean``: clean training rows of the same distributions (a benign fine-tune a deployer might do),

and the memorization of the *other* forget rows (never shown to the attacker) is measured at
``relearn.eval_steps``. An Edit zeroes weights but does not freeze them: the attacker updates every
weight, the zeroed ones included (full fine-tune on TinyMem; on Pythia-class models a LoRA adapter
on every attention and MLP projection, whose low-rank update also reaches the zeroed entries).
Forgetting that only hid the rows (Hu et al. 2024; Łucki et al. 2024) comes back within a few steps;
the retrain oracle shows how fast rows the model never saw are learned from their neighbours.

Keys, with ``base`` = the memorization of the held-out rows by the pre-mitigation model:
``audit/relearn/<kind>/step<s>/mem/perc``, ``.../steps_to_half`` (first measured step reaching
base / 2, None if never) and ``.../auc`` (mean over the curve of memorization / base).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from memlab.audit.quant import block_weights
from memlab.data.lm_data import ArtifactSet
from memlab.errors import ConfigError
from memlab.metrics.evaluate import memorization
from memlab.metrics.forward import logits_of, model_device, token_losses
from memlab.metrics.utility import valid_targets

KINDS = ("forget_subset", "clean")


def split_forget(n: int, share: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the attacker's share of ``n`` forget rows (at least one) and of the held-out rest."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = max(1, round(share * n)) if n > 1 else 0
    return order[:cut].sort().values, order[cut:].sort().values


def batches(rows: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless shuffled batches of ``rows`` (a fresh permutation per pass)."""
    generator = torch.Generator().manual_seed(seed)
    size = max(1, min(int(batch_size), len(rows)))
    while True:
        yield from rows[torch.randperm(len(rows), generator=generator)].split(size)


def uses_lora(model: nn.Module, method: str) -> bool:
    """``relearn.method``: full | lora | auto (full for TinyMem's GPT-2, LoRA for others)."""
    if method not in ("auto", "full", "lora"):
        raise ConfigError(f"relearn.method={method}: unknown; use auto, full or lora")
    if method == "auto":
        return getattr(getattr(model, "config", None), "model_type", None) != "gpt2"
    return method == "lora"


@contextmanager
def attacker_model(model: nn.Module, relearn_cfg) -> Iterator[nn.Module]:
    """What the attacker trains: a full copy, or ``model`` itself with a LoRA adapter (peft) that
    is removed again on exit — no copy of a large model, its own weights never change."""
    if not uses_lora(model, relearn_cfg.method):
        yield copy.deepcopy(model).requires_grad_(True)
        return
    from peft import LoraConfig, get_peft_model

    layers = block_weights(model)
    lora = LoraConfig(
        r=int(relearn_cfg.lora_rank),
        lora_alpha=int(relearn_cfg.lora_alpha),
        lora_dropout=0.0,
        target_modules=sorted({name.split(".")[-1] for name in layers}),
        fan_in_fan_out=any(isinstance(m, Conv1D) for m in layers.values()),
    )
    trainable = {name: p.requires_grad for name, p in model.named_parameters()}
    was_training = model.training
    wrapped = get_peft_model(model, lora)
    try:
        yield wrapped
    finally:
        wrapped.unload()  # the original layers back in place, without the adapter
        for name, p in model.named_parameters():
            p.requires_grad_(trainable[name])
        model.train(was_training)


def curve_summary(kind: str, curve: dict[int, float], base: float) -> dict[str, float | None]:
    """The curve's keys plus ``steps_to_half`` and ``auc`` relative to ``base``."""
    out: dict[str, float | None] = {
        f"audit/relearn/{kind}/step{s}/mem/perc": v for s, v in curve.items()
    }
    reached = [s for s, v in curve.items() if base > 0 and v >= base / 2]
    out[f"audit/relearn/{kind}/steps_to_half"] = float(reached[0]) if reached else None
    ratios = [v / base for v in curve.values()] if base > 0 else []
    out[f"audit/relearn/{kind}/auc"] = sum(ratios) / len(ratios) if ratios else None
    return out


def relearn_curve(
    model: nn.Module,
    train_rows: torch.Tensor,
    heldout: ArtifactSet,
    eval_cfg,
    *,
    eos_id: int | None,
    pad_id: int,
    relearn_cfg,
    seed: int,
) -> dict[int, float]:
    """Memorization (%) of ``heldout`` at each evaluation step of a fine-tune on ``train_rows``
    (empty without training rows)."""
    if len(train_rows) == 0:
        return {}
    steps = int(relearn_cfg.steps)
    marks = sorted({int(s) for s in relearn_cfg.eval_steps if 0 <= int(s) <= steps})
    torch.manual_seed(seed)
    stream = batches(train_rows, relearn_cfg.batch_size, seed)
    curve = {}
    with attacker_model(model, relearn_cfg) as attacker:
        device = model_device(attacker)
        params = [p for p in attacker.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=float(relearn_cfg.lr))
        for step in range(steps + 1):
            if step in marks:
                verdict = memorization(attacker, heldout, eval_cfg, eos_id)
                curve[step] = verdict.metrics()["mem/perc"]
            if step < steps:
                attacker.train()
                x = next(stream).to(device)
                mask = valid_targets(x, pad_id).float()
                losses = token_losses(logits_of(attacker, x), x) * mask
                optimizer.zero_grad()
                (losses.sum() / mask.sum().clamp(min=1)).backward()
                optimizer.step()
    return curve
