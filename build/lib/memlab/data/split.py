"""Deterministic train/test splits with a local generator (reference Q2 fixed: never reseeds the
global torch RNG)."""

from __future__ import annotations

import torch

DATA_SEED = 598


def split_indices(
    n: int, num_test: int, seed: int = DATA_SEED
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random permutation of ``n`` from ``seed``: the last ``num_test`` are test (spec §3.3)."""
    if not 0 <= num_test <= n:
        raise ValueError(f"num_test={num_test} must lie in [0, {n}]")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[: n - num_test], perm[n - num_test :]
