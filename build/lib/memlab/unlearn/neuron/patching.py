"""One activation-patching mechanism for every neuron method (unlearning spec §5.3).

A forward hook on each layer's FFN activation module (``MLPAdapter`` block ``act``: GPT-2
``mlp.act``, GPT-NeoX ``mlp.act``) hands the post-activation tensor [B, T, inner] to a per-layer
function that may return a replacement. Three patches cover the five methods:

* :func:`scale` — multiply by a coefficient vector [inner] or per-row coefficients [B, inner]
  (Zero-Out's dropped unit, Slimming's clip(c, 0, 1), HardConcrete's gate);
* :func:`capture` — hand the activations to a callback (Activations, Integrated Gradients);
* :func:`replace_at` — overwrite one position per row (Integrated Gradients' injected activation;
  with the row's last position this is the reference's "replace the last position").

Hooks are removed when the ``patched`` context exits, so the model is never left modified.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from memlab.models.mlp_adapter import MLPAdapter

Patch = Callable[[torch.Tensor], torch.Tensor | None]


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
