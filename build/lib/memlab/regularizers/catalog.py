"""Imports every regularizer module so that each registers its short name."""

from memlab.regularizers import (  # noqa: F401
    example_tied_dropout,
    loss_truncation,
    spectral_norm,
)
