"""Regularizers by short name (``regularizer.name``): each builder returns Lightning callbacks."""

from __future__ import annotations

import pytorch_lightning as pl

from memlab.errors import Registry

REGULARIZERS = Registry("regularizer", key="regularizer.name")


@REGULARIZERS.register("none")
def _none(cfg, seed: int) -> list[pl.Callback]:
    return []


def build_regularizers(cfg, seed: int) -> list[pl.Callback]:
    """The callbacks of ``cfg`` (the ``regularizer`` group)."""
    import memlab.regularizers.catalog  # noqa: F401  (registers the regularizers)

    return REGULARIZERS.get(cfg.name)(cfg, seed)
