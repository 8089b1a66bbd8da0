"""Regularizers by short name (``regularizer.name``): one explicit table of builders, each
returning the Lightning callbacks of a ``regularizer`` config.

A model trained with example-tied dropout keeps its test-time mask only while the hooks are
attached; :func:`attach_test_time` re-attaches them to a model loaded from a checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytorch_lightning as pl
from omegaconf import OmegaConf
from torch import nn

from memlab.errors import lookup
from memlab.regularizers.example_tied_dropout import ExampleTiedDropout
from memlab.regularizers.loss_truncation import LossTruncation
from memlab.regularizers.spectral_norm import SpectralNorm


def example_tied_dropout(cfg, seed: int) -> ExampleTiedDropout:
    return ExampleTiedDropout(cfg.p_fixed, cfg.p_mem, seed=seed, compat=cfg.compat)


def loss_truncation(cfg, seed: int) -> LossTruncation:
    return LossTruncation(
        cfg.dropc, buffer_size=cfg.buffer_size, min_count=cfg.min_count, recompute=cfg.recompute
    )


def spectral_norm(cfg, seed: int) -> SpectralNorm:
    return SpectralNorm(
        lam=cfg.lam,
        squared=cfg.squared,
        n_power_iter=cfg.n_power_iter,
        n_head=cfg.get("n_head"),
        attn_out_split=cfg.attn_out_split,
        seed=seed,
    )


REGULARIZERS: dict[str, Callable[..., pl.Callback] | None] = {
    "none": None,
    "example_tied_dropout": example_tied_dropout,
    "loss_truncation": loss_truncation,
    "spectral_norm": spectral_norm,
}


def build_regularizers(cfg, seed: int) -> list[pl.Callback]:
    """The callbacks of ``cfg`` (the ``regularizer`` group); none for ``name: none``."""
    build = lookup(REGULARIZERS, cfg.name, kind="regularizer", key="regularizer.name")
    return [] if build is None else [build(cfg, seed)]


def attach_test_time(model: nn.Module, run_config: Mapping) -> nn.Module:
    """Re-attach the test-time behaviour of the run's regularizer to a model loaded from its
    checkpoint (``run_config`` = the checkpoint's ``memlab_config``). Only example-tied dropout
    changes the model at test time (memorization units dropped, generalization units rescaled);
    the other regularizers act on the training loss only. Returns ``model``."""
    cfg = OmegaConf.create(run_config)
    reg = cfg.get("regularizer") or {}
    if reg.get("name") == "example_tied_dropout":
        example_tied_dropout(reg, int(cfg.get("seed", 0))).attach(model, lambda: None)
    return model
