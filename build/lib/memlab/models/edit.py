"""An ``Edit``: what every unlearning method produces.

Keep-masks over MLP parameters (False = entry zeroed) plus the method's name, hyperparameters,
timing and the number of entries changed. An Edit applies to a model, saves as a small
safetensors file (only the flat indices of zeroed entries are stored), loads, and re-applies to
the original weights — so an edited model never needs to be saved in full (spec §13 item 26).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from memlab.errors import ConfigError
from memlab.models.zero3 import gathered_for_edit


@dataclass
class Edit:
    method: str
    masks: dict[str, torch.Tensor]  # full parameter name → bool keep-mask of the same shape
    hparams: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def n_changed(self) -> int:
        """Entries zeroed by the edit (counted over the masks)."""
        return int(sum((~m).sum() for m in self.masks.values()))

    def merged(self, other: Edit) -> Edit:
        """The edit that applies both (masks multiplied)."""
        masks = dict(self.masks)
        for name, m in other.masks.items():
            masks[name] = masks[name] & m if name in masks else m
        return Edit(self.method, masks, self.hparams, self.seconds + other.seconds)

    @torch.no_grad()
    def apply(self, model: nn.Module) -> nn.Module:
        """Zero the masked entries of ``model`` in place (and return it). A ZeRO-3 partitioned
        parameter is gathered one at a time (peak memory = one full MLP matrix) and re-partitioned."""
        params = dict(model.named_parameters())
        missing = [name for name in self.masks if name not in params]
        if missing:
            raise ConfigError(f"the edit masks {missing[0]}, which the model does not have")
        for name in self.masks:
            with gathered_for_edit([params[name]], modify=True):
                self.zero_masked({name: params[name]})
        return model

    @torch.no_grad()
    def zero_masked(self, params: dict[str, torch.Tensor]) -> None:
        """Multiply each given (full, gathered) parameter by its keep-mask in place."""
        for name, p in params.items():
            p.mul_(self.masks[name].to(device=p.device, dtype=p.dtype))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors, shapes = {}, {}
        for name, keep in self.masks.items():
            flat = (~keep.reshape(-1)).nonzero().squeeze(1)
            dtype = torch.int32 if keep.numel() < 2**31 else torch.int64
            tensors[name] = flat.to(dtype).cpu().contiguous()
            shapes[name] = list(keep.shape)
        meta = {
            "method": self.method,
            "hparams": json.dumps(self.hparams, default=str),
            "seconds": repr(float(self.seconds)),
            "shapes": json.dumps(shapes),
        }
        save_file(tensors, str(path), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Edit:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
        shapes = json.loads(meta["shapes"])
        masks = {}
        for name, flat in load_file(str(path)).items():
            keep = torch.ones(shapes[name], dtype=torch.bool)
            keep.view(-1)[flat.long()] = False
            masks[name] = keep
        return cls(meta["method"], masks, json.loads(meta["hparams"]), float(meta["seconds"]))
