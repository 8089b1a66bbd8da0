"""An ``Edit``: what every unlearning method produces — and ``MLPSnapshot``, what undoes one.

Keep-masks over MLP parameters (False = entry zeroed) plus the method's name, hyperparameters,
timing and the number of entries changed. An Edit applies to a model, saves as a small
safetensors file (only the flat indices of zeroed entries are stored), loads, and re-applies to
the original weights — so an edited model never needs to be saved in full (deviations.md D55).

The reference keeps ``original_model = deepcopy(model)`` to restore a model after an edit,
doubling the memory of a 6.9B model (deviations.md D52). Every unlearning method edits MLP
parameters only, so a CPU copy of those (≈ 2/3 of a Pythia model's non-embedding weights, in the
model's dtype) is all that restoring needs; under ZeRO-3 the partitioned parameters are gathered
for the copy and the restore.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from memlab.errors import ConfigError
from memlab.models.mlp_adapter import MLPAdapter
from memlab.models.zero3 import gathered_for_edit


@dataclass
class Edit:
    method: str
    masks: dict[str, torch.Tensor]  # full parameter name → bool keep-mask of the same shape
    hparams: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    source: str | None = None  # the file it was loaded from (named in errors)

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
        what = f"edit file {self.source}" if self.source else f"edit '{self.method}'"
        for name, keep in self.masks.items():
            if name not in params:
                raise ConfigError(
                    f"{what}: masks parameter {name}, which the model does not have "
                    "(an edit of another model?)"
                )
            if tuple(keep.shape) != tuple(_full_shape(params[name])):
                raise ConfigError(
                    f"{what}: the mask of {name} has shape {tuple(keep.shape)}, the model's "
                    f"parameter {tuple(_full_shape(params[name]))} (an edit of another model?)"
                )
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
        """The Edit saved at ``path``; a missing, truncated or foreign file is one line naming it."""
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            flat_indices = load_file(str(path))
        except (OSError, SafetensorError) as err:
            raise ConfigError(f"edit file {path}: cannot be read ({first_line(err)})") from None
        missing = [k for k in ("method", "hparams", "seconds", "shapes") if k not in meta]
        if missing:
            raise ConfigError(f"edit file {path}: not a memlab edit (no '{missing[0]}' metadata)")
        shapes = json.loads(meta["shapes"])
        masks = {}
        for name, flat in flat_indices.items():
            keep = torch.ones(shapes[name], dtype=torch.bool)
            if flat.numel() and int(flat.max()) >= keep.numel():
                raise ConfigError(f"edit file {path}: indices of {name} lie outside its shape")
            keep.view(-1)[flat.long()] = False
            masks[name] = keep
        return cls(
            meta["method"],
            masks,
            json.loads(meta["hparams"]),
            float(meta["seconds"]),
            source=str(path),
        )


def first_line(err: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _full_shape(param: torch.Tensor) -> torch.Size:
    """A parameter's full shape, also when ZeRO-3 holds only a shard of it (``ds_shape``)."""
    return getattr(param, "ds_shape", param.shape)


class MLPSnapshot:
    """CPU copies of every MLP weight and bias of ``model`` at construction time."""

    def __init__(self, model: nn.Module) -> None:
        params = MLPAdapter(model).parameters()
        with gathered_for_edit(list(params.values()), modify=False):
            self.weights = {n: p.detach().to("cpu", copy=True) for n, p in params.items()}

    @property
    def numel(self) -> int:
        return sum(t.numel() for t in self.weights.values())

    @torch.no_grad()
    def restore(self, model: nn.Module) -> nn.Module:
        """Write the saved MLP weights back into ``model`` (in place)."""
        params = dict(model.named_parameters())
        targets = [params[n] for n in self.weights]
        with gathered_for_edit(targets, modify=True):
            for name, saved in self.weights.items():
                params[name].copy_(saved.to(params[name].device))
        return model
