"""The one place where weights are edited under DeepSpeed ZeRO stage 3.

Under ZeRO-3 every rank holds only a shard of each parameter; outside a
``deepspeed.zero.GatheredParameters`` context ``param.data`` is an empty placeholder, and an in-place
change is silently lost unless the context names the rank whose values win (``modifier_rank``), which
are then re-partitioned to every rank (DeepSpeed #5326, PR #7817). Pruning neurons,
zeroing weights and applying masks therefore all go through :func:`gathered_for_edit`, and
:meth:`memlab.models.edit.Edit.apply` gathers one edited tensor at a time.
Every rank must call these together (the gather is a collective); the Edit is the same on every rank.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

MODIFIER_RANK = 0  # rank whose edited values are broadcast back into the shards


def is_partitioned(param: torch.Tensor) -> bool:
    """Whether DeepSpeed ZeRO-3 manages (partitions) this parameter."""
    return hasattr(param, "ds_id")


@contextlib.contextmanager
def gathered_for_edit(params: list[torch.Tensor], modify: bool = True) -> Iterator[None]:
    """Full parameters inside the block; with ``modify`` the in-place changes made on rank
    :data:`MODIFIER_RANK` are re-partitioned on exit. A no-op for ordinary parameters."""
    partitioned = [p for p in params if is_partitioned(p)]
    if not partitioned:
        yield
        return
    import deepspeed

    rank = MODIFIER_RANK if modify else None
    with deepspeed.zero.GatheredParameters(partitioned, modifier_rank=rank):
        yield


@torch.no_grad()
def load_weights_zero3(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """Copy full tensors into a (possibly ZeRO-3 partitioned) model, one parameter at a time —
    the workaround for ``from_pretrained`` inside ``configure_model`` under stage 3
    (Lightning #19259: the plain state-dict load sees empty, already partitioned tensors)."""
    params = dict(model.named_parameters())
    for name, value in state_dict.items():
        if name in params:
            with gathered_for_edit([params[name]], modify=True):
                params[name].copy_(value.to(params[name].device, params[name].dtype))
    return model
