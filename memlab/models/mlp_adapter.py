"""One view of the MLP (FFN) blocks of any supported causal LM, addressed by module path.

GPT-2 (TinyMem) stores its MLP as ``Conv1D`` layers with weights laid out (in, out); GPT-NeoX
(Pythia) uses ``nn.Linear`` with (out, in). Every unlearning method goes through this adapter, so
none touches architecture-specific names — which fixes the reference's substring layer lookup that
edited the wrong layers for ≥ 10-layer models and for Pythia (deviations.md D32).

"Unit j of layer l" is the FFN hidden channel j: its input weights and bias (which make its
pre-activation), its activation output, and its output weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from memlab.errors import ConfigError

# architecture → (path of the block list, fc_in, fc_out, act, weights stored as (in, out)?)
LAYOUTS = {
    "gpt2": ("transformer.h", "mlp.c_fc", "mlp.c_proj", "mlp.act", True),
    "gpt_neox": ("gpt_neox.layers", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h", "mlp.act", False),
}


@dataclass
class MLPBlock:
    """The FFN of one transformer layer."""

    layer: int
    prefix: str  # module path of the layer, e.g. "transformer.h.3"
    fc_in: nn.Module
    fc_out: nn.Module
    act: nn.Module
    in_out_layout: bool  # True: weights are (in, out) (GPT-2 Conv1D)
    fc_in_name: str
    fc_out_name: str
    act_name: str

    @property
    def inner(self) -> int:
        w = self.fc_in.weight
        return int(w.shape[1] if self.in_out_layout else w.shape[0])

    def unit_axis_in(self) -> int:
        """Axis of ``fc_in.weight`` that indexes units."""
        return 1 if self.in_out_layout else 0

    def unit_axis_out(self) -> int:
        """Axis of ``fc_out.weight`` that indexes units."""
        return 0 if self.in_out_layout else 1

    def out_weight_norms(self) -> torch.Tensor:
        """L2 norm of each unit's output weights [inner] (used by Activations)."""
        return self.fc_out.weight.detach().float().norm(dim=1 - self.unit_axis_out())

    def param_names(self) -> dict[str, nn.Parameter]:
        """Full parameter names → parameters of this block's MLP (weights and biases)."""
        out = {}
        for mod_name, mod in ((self.fc_in_name, self.fc_in), (self.fc_out_name, self.fc_out)):
            for pname, p in mod.named_parameters(recurse=False):
                out[f"{mod_name}.{pname}"] = p
        return out


class MLPAdapter:
    """Per-layer access to the MLP blocks of a GPT-2 or GPT-NeoX model."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.arch = detect_arch(model)
        blocks_path, fc_in, fc_out, act, in_out = LAYOUTS[self.arch]
        layers = model.get_submodule(blocks_path)
        self.blocks = [
            MLPBlock(
                i,
                f"{blocks_path}.{i}",
                layer.get_submodule(fc_in),
                layer.get_submodule(fc_out),
                layer.get_submodule(act),
                in_out,
                f"{blocks_path}.{i}.{fc_in}",
                f"{blocks_path}.{i}.{fc_out}",
                f"{blocks_path}.{i}.{act}",
            )
            for i, layer in enumerate(layers)
        ]

    @property
    def n_layer(self) -> int:
        return len(self.blocks)

    @property
    def inner(self) -> int:
        return self.blocks[0].inner

    def parameters(self) -> dict[str, nn.Parameter]:
        """Every MLP weight and bias of every layer, by full parameter name."""
        out: dict[str, nn.Parameter] = {}
        for block in self.blocks:
            out.update(block.param_names())
        return out

    def weight_matrices(self) -> dict[str, nn.Parameter]:
        """The MLP weight matrices only (Subnet/BalancedSubnet mask these, never biases)."""
        return {n: p for n, p in self.parameters().items() if n.endswith(".weight")}

    def unit_mask(self, layer: int, units: torch.Tensor) -> dict[str, torch.Tensor]:
        """Keep-masks that silence ``units`` of ``layer``: their FFN-in weights and bias are zeroed
        (act(0) = 0 for ReLU/GELU, so the unit outputs 0 for every input)."""
        block = self.blocks[layer]
        w = block.fc_in.weight
        keep_w = torch.ones_like(w, dtype=torch.bool)
        keep_w.index_fill_(block.unit_axis_in(), units.to(w.device), False)
        masks = {f"{block.fc_in_name}.weight": keep_w}
        if getattr(block.fc_in, "bias", None) is not None:
            keep_b = torch.ones_like(block.fc_in.bias, dtype=torch.bool)
            keep_b[units.to(keep_b.device)] = False
            masks[f"{block.fc_in_name}.bias"] = keep_b
        return masks


def detect_arch(model: nn.Module) -> str:
    """``gpt2`` or ``gpt_neox`` from the model's module tree."""
    names = {n for n, _ in model.named_modules()}
    for arch, (blocks_path, *_rest) in LAYOUTS.items():
        if blocks_path in names:
            return arch
    raise ConfigError(
        f"unsupported architecture {type(model).__name__}; supported: {', '.join(LAYOUTS)}"
    )
