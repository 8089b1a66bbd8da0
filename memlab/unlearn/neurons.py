"""What the five neuron methods share (Chang et al. 2024, "Do Localization Methods Actually
Localize Memorized Data in LLMs?" — MemPi): activation patching, the attribution cache, and the
one ablation that turns attribution scores [n_layer, inner] into an Edit.

A neuron method differs from the others only in how it scores FFN hidden units; the top
k = ⌊inner · ratio⌋ units of every layer are then silenced by zeroing their FFN-in weights and
bias (act(0) = 0 for ReLU/GELU, so the unit outputs 0 for every input). Layers are addressed by
module path through :class:`~memlab.models.mlp_adapter.MLPAdapter` and every k ≥ 0 works
(deviations.md D32, D33). The retain set is unused by all five, as in the reference.

Activation patching: a forward hook on each layer's FFN activation module (GPT-2 and GPT-NeoX
``mlp.act``) hands the post-activation tensor [B, T, inner] to a per-layer function that may
return a replacement — :func:`scale` (Zero-Out's dropped unit, Slimming's and HardConcrete's
gates), :func:`capture` (Activations, Integrated Gradients), :func:`replace_at` (Integrated
Gradients' injected activation). Hooks are removed on exit, so the model is never left modified.

Attribution cache: one attribution serves every ratio. Its key holds everything that changes the
scores (method, hyperparameters, context, hashes of the forget set and the weights) but not the
ratio; a hit reports the seconds the attribution originally took (deviations.md D41).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from memlab.models.edit import Edit
from memlab.models.mlp_adapter import MLPAdapter
from memlab.runs import timed
from memlab.unlearn.common import UnlearnContext, count_of, hparams_of, largest

# (model, forget rows, method config, context) → scores [n_layer, inner]
Attribution = Callable[[nn.Module, torch.Tensor, Any, UnlearnContext], torch.Tensor]
Patch = Callable[[torch.Tensor], torch.Tensor | None]


# --------------------------------------------------------------------------- patching
@contextmanager
def patched(adapter: MLPAdapter, patches: dict[int, Patch]) -> Iterator[None]:
    """Apply ``patches`` (layer index → function of the activation output) while inside."""
    handles = []
    try:
        for layer, fn in patches.items():
            hook = _hook(fn)
            handles.append(adapter.blocks[layer].act.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _hook(fn: Patch):
    def hook(_module, _inputs, output):
        return fn(output)  # None keeps the output unchanged

    return hook


def scale(coef: torch.Tensor | Callable[[], torch.Tensor]) -> Patch:
    """Multiply the activations by ``coef`` ([inner] for all rows, [B, inner] per row); a
    callable is evaluated at every forward (trainable gates, stochastic masks)."""

    def fn(act: torch.Tensor) -> torch.Tensor:
        c = coef() if callable(coef) else coef
        c = c.to(act.dtype)
        return act * (c.unsqueeze(1) if c.dim() == 2 else c)

    return fn


def capture(sink: Callable[[torch.Tensor], None]) -> Patch:
    """Hand the activations to ``sink`` and leave them unchanged."""

    def fn(act: torch.Tensor) -> None:
        sink(act)
        return None

    return fn


def replace_at(positions: torch.Tensor, values: torch.Tensor) -> Patch:
    """Overwrite row b's activation at position ``positions[b]`` with ``values[b]`` [inner]."""

    def fn(act: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(act.shape[0], device=act.device)
        out = act.clone()
        out[rows, positions.to(act.device)] = values.to(act.dtype)
        return out

    return fn


# --------------------------------------------------------------------------- attribution cache
NOT_IN_KEY = ("ratio", "cache_dir")


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """A short blake2b digest of named tensors (names, dtypes, shapes and bytes)."""
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(tensors[name].shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def attribution_key(
    method: str,
    hparams: dict[str, Any],
    context: dict[str, Any],
    forget: torch.Tensor,
    model: nn.Module,
) -> str:
    """The cache key of one attribution (ratio excluded)."""
    described = {
        "method": method,
        "hparams": {k: v for k, v in sorted(hparams.items()) if k not in NOT_IN_KEY},
        "context": context,
        "forget": tensor_digest({"forget": forget}),
        "model": tensor_digest(dict(model.state_dict())),
    }
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class AttributionCache:
    """``<cache_dir>/<method>/<key>.safetensors`` holding the scores and the seconds they took."""

    def __init__(self, cache_dir: str | Path, method: str) -> None:
        self.dir = Path(cache_dir) / method

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.safetensors"

    def load(self, key: str) -> tuple[torch.Tensor, float] | None:
        path = self.path(key)
        if not path.is_file():
            return None
        with safe_open(str(path), framework="pt") as f:
            return f.get_tensor("scores"), float(f.metadata()["seconds"])

    def save(self, key: str, scores: torch.Tensor, seconds: float) -> Path:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file(
            {"scores": scores.detach().cpu().contiguous()}, str(tmp), {"seconds": repr(seconds)}
        )
        tmp.replace(path)
        return path


# --------------------------------------------------------------------------- the ablation
def ablate_top_units(
    model: nn.Module,
    scores: torch.Tensor,
    *,
    ratio: float,
    method: str,
    hparams: dict[str, Any] | None = None,
) -> Edit:
    """The Edit that silences the top ⌊inner · ratio⌋ units of every layer by ``scores``."""
    adapter = MLPAdapter(model)
    expected = (adapter.n_layer, adapter.inner)
    if tuple(scores.shape) != expected:
        raise ValueError(f"{method}: scores have shape {tuple(scores.shape)}, expected {expected}")
    k = count_of(adapter.inner, ratio)
    masks: dict[str, torch.Tensor] = {}
    for layer, units in enumerate(largest(scores.detach().cpu(), k)):
        masks.update(adapter.unit_mask(layer, units))
    return Edit(method, {n: m.cpu() for n, m in masks.items()}, dict(hparams or {}))


def attribute_and_ablate(
    name: str,
    fn: Attribution,
    model: nn.Module,
    forget: torch.Tensor,
    cfg: Any,
    ctx: UnlearnContext,
) -> Edit:
    """A neuron method: attribution ``fn`` (or its cached scores), then the top-k ablation; the
    Edit's hyperparameters record the seconds the attribution took (originally, if cached) and
    whether the cache served it."""
    hparams = hparams_of(cfg)
    cache = key = None
    if hparams.get("cache_dir"):
        cache = AttributionCache(hparams["cache_dir"], name)
        key = attribution_key(name, hparams, asdict(ctx), forget, model)
    hit = cache.load(key) if cache is not None else None
    if hit is not None:
        scores, seconds = hit
    else:
        scores, seconds = timed(lambda: fn(model, forget, cfg, ctx).detach().float().cpu())
        if cache is not None:
            cache.save(key, scores, seconds)
    hparams.update(attribution_seconds=seconds, cached=hit is not None)
    return ablate_top_units(model, scores, ratio=hparams["ratio"], method=name, hparams=hparams)


def prompt_len(hp: dict[str, Any], ctx: UnlearnContext) -> int:
    """The method's ``prompt_len`` if set, else the evaluation's (the reference always used 50,
    wrong for Pythia's 32; deviations.md D38)."""
    value = hp.get("prompt_len")
    return int(value) if value is not None else int(ctx.prompt_len)
