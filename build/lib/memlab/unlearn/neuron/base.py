"""What every neuron method shares: ratio check, attribution (or its cache), one ablation.

A neuron method is only an attribution function ``(model, forget, cfg, ctx) -> scores
[n_layer, inner]``; :func:`neuron_method` turns it into the registry's method contract
``(model, forget, retain, cfg, ctx) -> Edit`` (spec §6: "neuron methods differ only in how they
compute their scores"). The retain set is unused by all five (as in the reference).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from memlab.models.edit import Edit
from memlab.unlearn.neuron.ablation import ablate_top_units, check_ratio
from memlab.unlearn.neuron.cache import AttributionCache, attribution_key
from memlab.unlearn.registry import METHODS, UnlearnContext

Attribution = Callable[[nn.Module, torch.Tensor, Any, UnlearnContext], torch.Tensor]


def plain(cfg: Any) -> dict[str, Any]:
    """The method config as a plain dict (DictConfig or mapping)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return dict(cfg)


def attribute(
    name: str,
    fn: Attribution,
    model: nn.Module,
    forget: torch.Tensor,
    cfg: Any,
    ctx: UnlearnContext,
) -> tuple[torch.Tensor, float, bool]:
    """Scores, the seconds they took (originally, if cached) and whether the cache served them."""
    cache_dir = plain(cfg).get("cache_dir")
    cache = key = None
    if cache_dir:
        cache = AttributionCache(cache_dir, name)
        key = attribution_key(name, plain(cfg), asdict(ctx), forget, model)
        hit = cache.load(key)
        if hit is not None:
            return hit[0], hit[1], True
    start = time.perf_counter()
    scores = fn(model, forget, cfg, ctx).detach().float().cpu()
    seconds = time.perf_counter() - start
    if cache is not None:
        cache.save(key, scores, seconds)
    return scores, seconds, False


def neuron_method(name: str) -> Callable[[Attribution], Attribution]:
    """Register attribution ``fn`` as the neuron method ``name`` (attribution + top-k ablation)."""

    def decorator(fn: Attribution) -> Attribution:
        @METHODS.register(name)
        def method(
            model: nn.Module,
            forget: torch.Tensor,
            retain: torch.Tensor,
            cfg: Any,
            ctx: UnlearnContext,
        ) -> Edit:
            check_ratio(plain(cfg).get("ratio"))  # fail before spending time on attribution
            start = time.perf_counter()
            scores, attribution_seconds, cached = attribute(name, fn, model, forget, cfg, ctx)
            hparams = {**plain(cfg), "attribution_seconds": attribution_seconds, "cached": cached}
            edit = ablate_top_units(model, scores, plain(cfg)["ratio"], name, hparams)
            edit.seconds = time.perf_counter() - start
            return edit

        method.attribution = fn
        method.__doc__ = fn.__doc__
        return fn

    return decorator


def prompt_len(hp: dict[str, Any], ctx: UnlearnContext) -> int:
    """The method's ``prompt_len`` if set, else the evaluation's (spec §6.5: the reference always
    used 50, wrong for Pythia's 32 — §13 item 6)."""
    value = hp.get("prompt_len")
    return int(value) if value is not None else int(ctx.prompt_len)
