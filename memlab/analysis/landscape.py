"""2-D loss landscapes around a model, before and after an edit.

The paper shows that a well-tuned BalancedSubnet edit barely changes Pythia-2.8B's loss landscape
while a badly tuned Subnet edit changes it drastically. The reference evaluated a 21×21 grid at
distance 1 along two random directions. Here the directions are *filter-normalised* (Li et al.,
"Visualizing the Loss Landscape of Neural Nets", 2018): each row (output filter) of a random Gaussian
direction is rescaled to the norm of the matching row of the weights, so that models with different
weight scales are comparable; 1-D parameters (biases, norms) get zero direction by default.

Generic over any ``torch.nn.Module`` and any ``loss_fn(model) -> float``; the weights are restored
after the scan. For before/after comparisons the same random seed gives the same raw directions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from memlab.analysis.plots import pyplot, save_png


@dataclass
class Landscape:
    """Loss values on a grid: ``losses[i, j]`` at ``center + alphas[i] d1 + betas[j] d2``."""

    alphas: np.ndarray
    betas: np.ndarray
    losses: np.ndarray


def _params(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad or p.is_floating_point()]


def filter_normalized_direction(
    model: torch.nn.Module, generator: torch.Generator, include_1d: bool = False
) -> list[torch.Tensor]:
    """A random direction with each filter (dim-0 slice) scaled to its weight filter's norm."""
    direction = []
    for p in _params(model):
        d = torch.randn(p.shape, generator=generator, dtype=torch.float32).to(p.device, p.dtype)
        if p.dim() <= 1:
            d = d * (p.norm() / (d.norm() + 1e-10)) if include_1d else torch.zeros_like(p)
        else:
            w = p.detach().reshape(p.shape[0], -1)
            flat = d.reshape(p.shape[0], -1)
            flat.mul_(w.norm(dim=1, keepdim=True) / (flat.norm(dim=1, keepdim=True) + 1e-10))
        direction.append(d)
    return direction


@torch.no_grad()
def loss_landscape_2d(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module], float],
    *,
    steps: int = 21,
    distance: float = 1.0,
    seed: int = 123,
    include_1d: bool = False,
) -> Landscape:
    """Evaluate ``loss_fn`` on a ``steps × steps`` grid in [-distance, distance]² around the model."""
    gen = torch.Generator().manual_seed(seed)
    d1 = filter_normalized_direction(model, gen, include_1d)
    d2 = filter_normalized_direction(model, gen, include_1d)
    params = _params(model)
    center = [p.detach().clone() for p in params]
    coords = np.linspace(-distance, distance, steps)
    losses = np.zeros((steps, steps))
    was_training = model.training
    model.eval()
    try:
        for i, a in enumerate(coords):
            for j, b in enumerate(coords):
                for p, c, u, v in zip(params, center, d1, d2):
                    p.copy_(c + a * u + b * v)
                losses[i, j] = float(loss_fn(model))
    finally:
        for p, c in zip(params, center):
            p.copy_(c)
        model.train(was_training)
    return Landscape(coords, coords.copy(), losses)


def compare_edit(
    before: torch.nn.Module,
    after: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module], float],
    **kw: Any,
) -> tuple[Landscape, Landscape]:
    """Landscapes of a model before and after an edit, with the same random directions (seed)."""
    return loss_landscape_2d(before, loss_fn, **kw), loss_landscape_2d(after, loss_fn, **kw)


def plot_landscapes(
    landscapes: dict[str, Landscape], out: str | Path, log_scale: bool = True
) -> Path:
    """Side-by-side contour plots (shared colour scale) of named landscapes, saved as PNG."""
    plt = pyplot()
    values = {
        k: np.log(np.maximum(v.losses, 1e-12)) if log_scale else v.losses
        for k, v in landscapes.items()
    }
    lo = min(float(np.nanmin(v)) for v in values.values())
    hi = max(float(np.nanmax(v)) for v in values.values())
    levels = np.linspace(lo, hi if hi > lo else lo + 1e-6, 30)
    fig, axes = plt.subplots(1, len(landscapes), figsize=(4.5 * len(landscapes), 4), squeeze=False)
    for ax, (name, land) in zip(axes[0], landscapes.items()):
        cs = ax.contourf(land.betas, land.alphas, values[name], levels=levels, cmap="magma_r")
        ax.plot(0, 0, "c+", ms=12)
        ax.set_title(name)
        ax.set_xlabel("direction 2")
        ax.set_ylabel("direction 1")
    fig.colorbar(cs, ax=axes[0].tolist(), label="log loss" if log_scale else "loss")
    return save_png(fig, out)
