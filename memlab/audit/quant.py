"""Weight-only quantization of every attention and MLP weight matrix, simulated in float.

Does a mitigation survive the rounding a deployment applies? Forgetting that lives in small weight
differences can be undone by it (Zhang et al. 2025, "Catastrophic failure of LLM unlearning via
quantization"). Each weight is quantized and immediately de-quantized (the values an int kernel
would compute with), then memorization is measured as usual:

- ``int8``: symmetric, one scale per output channel (absmax / 127);
- ``int4``: symmetric, one scale per group of ``quant.group_size`` input weights of an output
  channel (absmax / 7, codes −8…7).

Symmetric codes keep a zeroed weight exactly zero, so a pruning Edit stays in place. Simulated,
not a library: optimum-quanto and torchao quantize ``nn.Linear`` only (not GPT-2's ``Conv1D``,
TinyMem's layer type), and torchao's int4 needs a GPU kernel (docs/audit.md).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from memlab.errors import ConfigError

OUTPUT_LAYERS = ("lm_head", "embed_out")  # the unembedding is not an attention or MLP weight


def block_weights(model: nn.Module) -> dict[str, nn.Module]:
    """The attention and MLP projection layers (``nn.Linear`` / GPT-2 ``Conv1D``) by name."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear | Conv1D) and name.split(".")[-1] not in OUTPUT_LAYERS
    }


def fake_quantize(weight: torch.Tensor, *, bits: int, group_size: int | None) -> torch.Tensor:
    """Quantize-dequantize ``weight`` [out, in]: per output channel, or per group of inputs."""
    out_dim, in_dim = weight.shape
    size = in_dim if group_size is None else int(group_size)
    if in_dim % size:
        raise ConfigError(f"quant.group_size={size} must divide the input width {in_dim}")
    groups = weight.float().reshape(out_dim, in_dim // size, size)
    top = 2 ** (bits - 1) - 1
    scale = groups.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12) / top
    codes = (groups / scale).round().clamp(-top - 1, top)
    return (codes * scale).reshape(out_dim, in_dim).to(weight.dtype)


@torch.no_grad()
def quantized_copy(model: nn.Module, *, bits: int, group_size: int | None) -> nn.Module:
    """A copy of ``model`` whose attention and MLP weights went through :func:`fake_quantize`."""
    quantized = copy.deepcopy(model)
    for module in block_weights(quantized).values():
        weight = module.weight
        as_linear = weight.T if isinstance(module, Conv1D) else weight  # Conv1D stores [in, out]
        rounded = fake_quantize(as_linear, bits=bits, group_size=group_size)
        weight.copy_(rounded.T if isinstance(module, Conv1D) else rounded)
    return quantized


def schemes(quant_cfg) -> dict[str, dict]:
    """The two schemes of the audit: ``int8`` (per channel) and ``int4`` (grouped)."""
    return {
        "int8": {"bits": 8, "group_size": None},
        "int4": {"bits": 4, "group_size": int(quant_cfg.group_size)},
    }
